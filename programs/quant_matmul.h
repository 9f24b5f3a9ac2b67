// Quantized matrix multiplication, the flagship program (README "Quantized matmul").
//
//   C[m, n] = sum_k A[m, k] * W[n, k],   W[n, k] = (decode(q[n, k]) - z[k / g, n]) * s[k / g, n]
//
// A is M x K row-major in f16 or bf16, C is M x N in the same type, accumulation in f32 on tensor cores.
// q holds codes of any 1..8-bit format, pre-transformed by pack_weights so that each lane's fragment codes
// of a 16-column tile are contiguous bytes (c = min(4, g/16) K steps of 16 per load: 4b bytes, one 16-byte
// load at 4 bits), viewed in place as codes of the mma operand layout, decoded by the vectorized cast
// emitters (and shifted by the zero point), multiplied on tensor cores into an f32 partial sum per scale
// group, which the group's scale then joins to the result. Schedule says how blocks and warps cover the
// problem; choose_schedule picks one.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "backend_cuda/emit.h"
#include "isa/dtype.h"
#include "vm/program.h"

namespace anybit::programs {

enum class ZeroMode { None, Integer, Float };

struct QuantFormat {
  isa::DataType weights = isa::DataType::signed_int(4);
  isa::DataType activations = isa::DataType::f16();
  int group = 128;  // g; a multiple of 16 dividing K (K itself for per-channel scales)
  ZeroMode zeros = ZeroMode::None;
  bool bias = false;  // C = A . W^T + bias[N] (activation type)
};

// How the kernel covers the problem. The packed weight layout does not depend on it, so one packing
// serves every schedule (choose_schedule picks per call, from M).
struct Schedule {
  int warps = 4;    // warps side by side along N, 16 columns each: a block covers 16 * warps columns
  int m_tiles = 1;  // m16 tiles per warp (1 or 2): a block covers 16 * m_tiles rows of M
  // S >= 2: weights and A go through S shared-memory stages filled by cp.async, S - 1 chunks in flight
  // while the current one is multiplied, A read back with ldmatrix from swizzled tiles; 0: every lane loads
  // its operands from global memory directly.
  int stages = 3;
  // K slices computed by separate blocks (grid z). Above 1 each slice writes an f32 partial tile to a
  // workspace of split_k x M x N floats and splitk_reduce sums them (plus bias) into C.
  int split_k = 1;
  // The small-M schedule: weights as the mma A operand (16 columns of N per m16 fragment) and the batch on
  // the n8 side, so a block covers 8 * m_tiles rows of M and every mma multiplies 256 distinct weights
  // (twice as many as with the batch on the A side). C is computed transposed.
  bool weights_on_a = false;
  // Chunks per main-loop iteration (1, 2 or 4): a stage holds `unroll` chunks, and the barrier, the copy
  // issue and the loop bookkeeping are paid once for all of them (int4 M = 1 on sm_80: about 40 warp
  // instructions of an iteration's 110 besides the decode and the mma). The packed layout is unchanged.
  int unroll = 1;
  // The problem is whole tiles (whole_tiles_fit): N a multiple of the block's 16 * warps columns and K of
  // its `unroll` chunks. Weight, scale and zero loads then go without bounds tests (int4 M = 1 on sm_80:
  // 250 -> 223 instructions in an average iteration); the kernel's divisibility facts
  // (quant_matmul_divisibility) say so, and every launch checks them. choose_schedule sets it, and matmul
  // for any schedule it runs.
  bool whole_tiles = false;
  // The large-M schedule: the warps split the block's rows instead of its columns. Each warp decodes its
  // 16 columns of a chunk once into a shared tile of f16 (or bf16) weights, and after a barrier every warp
  // multiplies all of the block's columns for its own rows, so a decoded weight serves 16 * m_tiles * warps
  // rows (64 with one m16 tile a warp) instead of 16 * m_tiles. Not with weights_on_a.
  bool shared_decode = false;
  bool operator==(const Schedule&) const = default;
};

// K steps of 16 a lane's weight load covers: the largest divisor of g / 16 up to 8 (a group always ends
// at the end of a chunk). A warp consumes 16 x 16c weights per chunk.
int chunk_steps(const QuantFormat& f);

// Rows of M one block covers: 8 or 16 per m tile (weights_on_a or not), times the warps under shared_decode.
int block_rows(const Schedule& s);

// "w4 m1 s3 k1" style (" wa" appended for weights_on_a, " sd" for shared_decode, " u2" for unroll 2, " whole" for whole tiles), as
// printed by vmc and used in kernel names.
std::string describe(const Schedule& s);
// anybit::Error naming the field when a schedule is out of range.
void validate(const Schedule& s);

// The GPU a schedule is chosen for: its architecture and streaming multiprocessors (0: the count of the
// architecture's data-center part, default_multiprocessors).
struct Target {
  std::string arch = "sm_80";
  int multiprocessors = 0;
};
// A100 108 (sm_80), A10 72 (sm_86), L40S 142 (sm_89), H100 SXM 132 (sm_90/sm_90a), B200 148 (sm_100),
// RTX PRO 6000 188 (sm_120); anybit::Error naming the architecture otherwise.
int default_multiprocessors(const std::string& arch);

// The schedule the library uses for a problem: the batch on the mma n8 side with 8-row tiles for M <= 8,
// 16-row tiles up to M = 16 and 32-row tiles above; split-K until small-M grids fill the target's
// multiprocessors (twice over); 4 pipeline stages on sm_90 and newer (more shared memory, longer memory
// latency to hide), 3 before. Documented in the README (Quantized matmul, schedules).
Schedule choose_schedule(const QuantFormat& f, std::int64_t M, std::int64_t N, std::int64_t K, const Target& target = {});

// anybit::Error naming the problem when the format, group or shapes are unsupported.
void validate(const QuantFormat& f, std::int64_t M, std::int64_t N, std::int64_t K);

struct Quantized {
  std::vector<std::uint8_t> codes;   // N x K, one code per byte
  std::vector<std::uint32_t> scales; // K/g x N, codes of the activation type
  std::vector<std::uint32_t> zeros;  // K/g x N: weight-format codes (Integer) or activation codes (Float)
};

// Round-to-nearest quantization of f32 weights (N x K row-major), per group of g along K: symmetric
// (scale = max |w| / max code value) without zeros; asymmetric (scale = (max - min) / (2^b - 1), zero =
// -min / scale) with integer or float zeros (unsigned integer formats only).
Quantized quantize(const QuantFormat& f, const std::vector<float>& weights, std::int64_t N, std::int64_t K);

// The kernel's weight layout, and its inverse (bit-exact round trip but for the -0 of packed_code_type).
// pack_weights takes finite codes of the format only (anybit::Error naming the weight otherwise: NaN and inf
// codes of f8e4m3 and f8e5m2, or codes beyond the format's bits); the kernels decode without their patches. N x K codes at b bits take exactly
// N * K * b / 8 bytes: streams of c * b bytes (c = min(4, g / 16) K steps of 16), one per lane of each
// 16-column tile, ordered by K chunk, then tile, then lane, so a block's chunk is one contiguous run.
std::vector<std::uint8_t> pack_weights(const QuantFormat& f, const std::vector<std::uint8_t>& codes, std::int64_t N,
                                       std::int64_t K);
std::vector<std::uint8_t> unpack_weights(const QuantFormat& f, const std::vector<std::uint8_t>& packed, std::int64_t N,
                                         std::int64_t K);
std::size_t packed_size(const QuantFormat& f, std::int64_t N, std::int64_t K);
// The codes the packed layout holds for a weight format: the format's own, except for small floats with
// one exponent bit (f3e1m1, f4e1m2 ... f8e1m6), whose values are sign-magnitude integers times 2^(1 - m):
// those are stored as the two's complement integer of the same width (f3e1m1 as int3, f4e1m2 as int4 of
// twice the value), so the kernel decodes them as integers. Their -0 unpacks as 0.
isa::DataType packed_code_type(isa::DataType weights);

// The kernel as a VM program: parameters A, Wp (packed), S, [Z], [B (bias)], C, M, N, K; with split_k > 1
// the parameters are A, Wp, S, [Z], P (f32 workspace, split_k x M x N), M, N, K and splitk_reduce finishes.
// Where splits_activations(f, s), As (the bf16 pair of A that split_activations writes) replaces A.
// The order of a lane's codes in its packed stream: `fragment` (the mma operand order) with each 32-bit
// word of 1, 2 or 4-bit codes holding the first weight of each of its pairs (adjacent slots) in its low
// half and the second in its high half, at the same offset, so that one lop3 and one packed fma decode a
// pair. Other widths, and fragments whose lanes hold less than a word, are returned unchanged; a fragment
// whose innermost slots are not pairs, or whose slots do not split into whole words, is an anybit::Error.
layout::RegisterLayout half_split_layout(const layout::RegisterLayout& fragment, int bits);

vm::Program quant_matmul(const QuantFormat& f, const Schedule& s = {});
// The shared memory quant_matmul(f, s) allocates, in bytes, from the tiles' layouts (without building the
// program: choose_schedule asks on every call), also where it exceeds what a VM program may allocate.
std::int64_t shared_bytes(const QuantFormat& f, const Schedule& s);

// Whether an N x K problem is whole tiles of schedule s (Schedule::whole_tiles): N a multiple of 16 * warps,
// K of 16 * chunk_steps * unroll, a power of two (so that the emitter and the launch check can state it).
bool whole_tiles_fit(const QuantFormat& f, const Schedule& s, std::int64_t N, std::int64_t K);
// s with whole_tiles set exactly when the problem is whole tiles of it: derived from the shape, whatever s
// said. choose_schedule's choice, and every schedule matmul runs (chosen, tuned or given), go through it.
Schedule with_whole_tiles(Schedule s, const QuantFormat& f, std::int64_t N, std::int64_t K);

// What validate() guarantees about quant_matmul's parameters (N and K multiples of 16), and with whole
// tiles what they promise, as divisibility facts for the emitter (EmitOptions::divisibility): every caller
// that lowers the kernel passes these, so a kernel measured, simulated or reported is the one that runs.
std::map<std::string, std::int64_t> quant_matmul_divisibility(const QuantFormat& f, const Schedule& s);

// Parameter bounds for the emitter (EmitOptions::bounds) for a problem of M x N x K: N and K rounded up to
// powers of two, M to one as well but at least 2^14, so that one kernel serves every batch size of a
// model's shape. Under them the range analysis proves the index arithmetic of the main loop fits 32 bits
// (64-bit address arithmetic had been a third of an int4 iteration); launches check the bounds.
std::map<std::string, std::int64_t> quant_matmul_bounds(std::int64_t M, std::int64_t N, std::int64_t K);

// The emitter options every lowering of quant_matmul(f, s) and its splitk_reduce for an M x N x K problem
// uses: the divisibility facts and the bounds above.
backend_cuda::EmitOptions quant_matmul_emit_options(const QuantFormat& f, const Schedule& s, std::int64_t M, std::int64_t N,
                                                    std::int64_t K);

// Formats whose values f16 cannot hold (f7e6m0, f8e6m1, f8e7m0 reach 2^32..2^64; f6e5m0 and f7e5m1 2^16)
// with f16 activations and no zero points, outside shared_decode (and for f6e5m0 only with the weights
// on A, see quant_matmul.cpp): the weights decode exactly to bf16 and the mma runs on bf16, with each
// activation split once per launch into A_hi + A_lo, two bf16 values whose sum is the f16 value exactly
// (A_hi = A rounded to bf16; the remainder has at most 3 significant bits), both times 2^split_exponent.
// Two mma per fragment then give the exact products, where scaling each weight through f32 rounded it to
// f16 (and cost about 8 instructions a pair of weights against 3).
bool splits_activations(const QuantFormat& f, const Schedule& s);

// The power of two 2^e split_activations scales A by for weights of format f: e = 127 - bias for small
// floats (at most 111, where 65504 2^e still rounds to a finite bf16), 0 otherwise. The weights' fields
// moved into bf16's are their values times 2^(bias - 127): with A times 2^(127 - bias) the products are
// the exact ones, and the decode needs no packed multiply a pair.
int split_exponent(const QuantFormat& f);

// The prologue of a schedule that splits_activations, with e = split_exponent(f): As[0, m, k] = hi 2^e,
// hi = bf16(A[m, k]) of magnitude at most 65280 (the largest bf16 below 2^16), and As[1, m, k] =
// bf16(A[m, k] - hi) 2^e, exact (A_hi + A_lo = A 2^e).
// Parameters A (f16, M x K), As (bf16, 2 x M x K), M, K.
vm::Program split_activations(const QuantFormat& f);

// The split-K epilogue: C[m, n] = sum_z P[z, m, n] (+ bias[n]) in f32, rounded once to the activation
// type. Parameters P, [B], C, M, N.
vm::Program splitk_reduce(const QuantFormat& f, int split_k);

// Host reference in double: dequantize, then multiply. A holds activation codes (M x K).
// bias: N activation codes when f.bias, else ignored.
std::vector<double> reference_quant_matmul(const QuantFormat& f, const std::vector<std::uint32_t>& a, const Quantized& q,
                                           std::int64_t M, std::int64_t N, std::int64_t K,
                                           const std::vector<std::uint32_t>& bias = {});

}  // namespace anybit::programs
