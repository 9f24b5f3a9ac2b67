#include "programs/quant_matmul.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <map>
#include <numeric>
#include <cmath>

#include "backend_cuda/nvrtc.h"
#include "isa/bitpack.h"
#include "isa/error.h"
#include "layout/mma_layouts.h"
#include "vm/builder.h"
#include "vm/verifier.h"

namespace anybit::programs {

namespace {

using isa::DataType;
using isa::Expr;
using namespace layout;

// Layout of a warp group's (16 * steps) x (16 * warps) weight tile (k x n) in the mma B operand
// arrangement: warps side by side along n, two n8 fragments per warp, K steps in local slots.
RegisterLayout weight_layout(int warps, int steps) {
  return local({steps, 1}) * spatial({1, warps}) * local({1, 2}) * mma_m16n8k16_b();
}
RegisterLayout accumulator_layout(int warps) { return spatial({1, warps}) * local({1, 2}) * mma_m16n8k16_c(); }


double scale_value(const QuantFormat& f, std::uint32_t code) { return isa::decode(f.activations, code); }

// A code of the format as the packed layout holds it (packed_code_type), and back. Sign-magnitude codes of
// a small float with one exponent bit become the two's complement integer of the same value (the factor
// 2^(1 - m) aside); -0 becomes 0.
std::uint32_t to_packed_code(DataType w, std::uint32_t code) {
  if (packed_code_type(w) == w) return code;
  const int b = w.bits();
  const std::int32_t magnitude = static_cast<std::int32_t>(code & ((1u << (b - 1)) - 1));
  const std::int32_t value = (code >> (b - 1)) & 1 ? -magnitude : magnitude;
  return static_cast<std::uint32_t>(value) & w.code_mask();
}
std::uint32_t from_packed_code(DataType w, std::uint32_t code, std::int64_t n, std::int64_t k) {
  if (packed_code_type(w) == w) return code;
  const int b = w.bits();
  const std::uint32_t sign = 1u << (b - 1);
  if (code == sign)  // -2^(b-1): no value of the format
    throw Error(fmt::format("unpack_weights: the packed code of W[{}, {}] is {:#x}, which is no {} value", n, k, code, w.name()));
  return code & sign ? sign | ((~code + 1) & (sign - 1)) : code;
}

// A lane's weight stream travels through shared memory in 16-byte pieces when it is a multiple of 32
// bytes (this many pieces), else as one flat run of bytes per stage (0).
int weight_pieces(const QuantFormat& f) {
  const int bytes = chunk_steps(f) * f.weights.bits();
  return bytes % 32 == 0 ? bytes / 16 : 0;
}

// The shared tiles of a pipelined schedule, stages x unroll sub-stages each: A as rows of 16c activations
// under an XOR swizzle that spreads an ldmatrix's eight 16-byte rows over the banks, and the weight streams
// (see weight_pieces).
struct StageTiles {
  SharedLayout a, w;
};
StageTiles stage_tiles(const QuantFormat& f, const Schedule& s) {
  const int c = chunk_steps(f), b = f.weights.bits(), rows = block_rows(s), n = s.stages * s.unroll;
  const int chunks_per_row = 2 * c;  // 16-byte chunks in a row of 16c f16 values
  const int bits = chunks_per_row >= 8 ? 3 : chunks_per_row >= 4 ? 2 : 1;
  // The XOR's key is the row: the address bits just above a row's chunks (rows of 16 chunks: shift 4).
  int shift = bits;
  while ((1 << shift) < chunks_per_row && chunks_per_row % (2 << shift) == 0) ++shift;
  const SharedLayout a = SharedLayout::row_major({n, rows, 16 * c}, Swizzle{bits, 3, shift});
  // Streams of 32 or 64 bytes stored whole put two or four lanes of a 16-byte load phase on the same banks.
  // A stage holds them piece by piece instead: the j-th 16 bytes of every lane side by side (loads of
  // piece j are conflict-free), each piece's row skewed by 128 / pieces bytes so that the copy's writes,
  // which take a stream's pieces on consecutive threads, are too.
  if (const int pieces = weight_pieces(f)) {
    const std::int64_t row = 32LL * s.warps * 16 + 128 / pieces;
    return {a, SharedLayout({n, 32 * s.warps, pieces, 16}, {pieces * row, 16, row, 1})};
  }
  return {a, SharedLayout::row_major({n, 1, 1, 32LL * s.warps * c * b})};
}

// shared_decode: the decoded weights of one chunk per unrolled chunk, (chunk, k step, n, k) split as
// [unroll, c, 2W, 8, 2, 4, 2] = (chunk, k step, n / 8, n % 8, k / 8, k % 8 / 2, k % 2): in mma B fragment
// order, lane 4 (n % 8) + k % 8 / 2 holding the 2W 8-column tiles' four values in a row, so that a warp
// stores its two tiles of a k step as one 16-byte store a lane (c a chunk, where 32-bit stores of the
// registers took 4c) and loads a step's 2W tiles in W 16-byte loads, as many as ldmatrix.x4 took (int4
// M = 128 on sm_80: 349 -> 317 instructions an iteration, 157 -> 127 registers). Lanes 8W + 8 values
// apart: the eight lanes of a 16-byte access phase fall on different banks (W = 2 and 4).
SharedLayout decoded_tile(const QuantFormat& f, const Schedule& s) {
  const std::int64_t c = chunk_steps(f), W = s.warps, lane = 8 * W + 8;
  return SharedLayout({s.unroll, c, 2 * W, 8, 2, 4, 2}, {c * 32 * lane, 32 * lane, 4, 4 * lane, 2, lane, 1});
}

// One chunk's `steps` k steps of the decoded tile with (n, k) = (16W, 16) split as decoded_tile splits them.
layout::Shape fragment_split(int W, int steps) { return {1, steps, 2 * W, 8, 2, 4, 2}; }

}  // namespace

// The order of a lane's codes in its packed stream: the two codes of each mma pair d slots apart, where
// d * b is the first multiple of 16 bits (d = 16 / gcd(b, 16)), so both sit at the same offset of two
// 16-bit halves. For 1, 2 and 4-bit codes that is one word (pair i at bits i*b and 16 + i*b): one lop3 and
// one packed fma decode a pair; for 3, 5, 6 and 7 bits the halves are a few words apart and one prmt joins
// them for all the pairs they hold (codes that cross a half's end take funnel shifts); 8-bit pairs take
// bytes 0 and 2, or 1 and 3, of a word (small floats then need one shift, or none, to reach the top of
// their halves). Lanes with fewer than 2d codes keep the fragment order. Same elements per lane as
// `fragment`; only the slot order differs.
RegisterLayout half_split_layout(const RegisterLayout& fragment, int bits) {
  if (bits < 1 || bits > 8) return fragment;
  const int d = 16 / std::gcd(bits, 16);
  if (fragment.local_size() % (2 * d) != 0) return fragment;
  std::vector<layout::Mode> modes = fragment.modes();
  std::vector<std::vector<int>> dims = fragment.dim_modes();
  std::vector<int> locals = fragment.local();
  const int pair = locals.back();
  const auto refuse = [&](const char* why) {
    return Error(fmt::format("half_split_layout({}, {} bits): {}", fragment.to_string(), bits, why));
  };
  if (modes[pair].size != 2 || modes[pair].dim < 0) throw refuse("the innermost local slots are not pairs");
  locals.pop_back();
  // Peel local modes (innermost first) until they cover d pairs, splitting one if needed.
  std::int64_t need = d;
  std::size_t k = locals.size();
  while (need > 1) {
    if (k == 0) throw refuse("a lane's pairs do not fill a word");
    const int m = locals[--k];
    if (modes[m].size <= need) {
      if (need % modes[m].size != 0) throw refuse("the local modes do not split into whole words");
      need /= modes[m].size;
      continue;
    }
    if (modes[m].size % need != 0) throw refuse("the local modes do not split into whole words");
    const int inner = static_cast<int>(modes.size());
    modes.push_back({need, modes[m].dim});
    modes[m].size /= need;
    auto& dm = dims[modes[m].dim];
    dm.insert(std::find(dm.begin(), dm.end(), m) + 1, inner);
    locals.insert(locals.begin() + static_cast<std::ptrdiff_t>(k) + 1, inner);
    ++k;
    need = 1;
  }
  locals.insert(locals.begin() + static_cast<std::ptrdiff_t>(k), pair);
  return RegisterLayout(fragment.rank(), modes, dims, fragment.spatial(), locals);
}

void validate(const QuantFormat& f, std::int64_t M, std::int64_t N, std::int64_t K) {
  const DataType w = f.weights;
  if (w.bits() > 8 || w.is_bool() || !(w.is_integer() || w.is_float()))
    throw Error(fmt::format("quantized matmul: weights must be a 1..8-bit integer or small float format, not {}", w.name()));
  if (!(f.activations == DataType::f16() || f.activations == DataType::bf16()))
    throw Error(fmt::format("quantized matmul: activations must be f16 or bf16, not {}", f.activations.name()));
  if (f.zeros == ZeroMode::Integer && w.kind() != isa::TypeKind::UnsignedInt)
    throw Error(fmt::format("quantized matmul: integer zero points need an unsigned integer format, not {}", w.name()));
  if (M < 1 || N < 1 || K < 1) throw Error(fmt::format("quantized matmul: shapes must be positive, got M={} N={} K={}", M, N, K));
  if (N % 16 || K % 16) throw Error(fmt::format("quantized matmul: N and K must be multiples of 16, got N={} K={}", N, K));
  if (f.group < 16 || f.group % 16 || K % f.group)
    throw Error(fmt::format("quantized matmul: the group size {} must be a multiple of 16 that divides K={}", f.group, K));
}

Quantized quantize(const QuantFormat& f, const std::vector<float>& w, std::int64_t N, std::int64_t K) {
  validate(f, 1, N, K);
  if (static_cast<std::int64_t>(w.size()) != N * K)
    throw Error(fmt::format("quantize: {} weights given for N x K = {} x {}", w.size(), N, K));
  const std::int64_t groups = K / f.group;
  Quantized q;
  q.codes.resize(static_cast<std::size_t>(N * K));
  q.scales.resize(static_cast<std::size_t>(groups * N));
  if (f.zeros != ZeroMode::None) q.zeros.resize(static_cast<std::size_t>(groups * N));
  const double top = isa::max_finite(f.weights);
  for (std::int64_t gi = 0; gi < groups; ++gi)
    for (std::int64_t n = 0; n < N; ++n) {
      double lo = INFINITY, hi = -INFINITY, amax = 0;
      for (std::int64_t k = gi * f.group; k < (gi + 1) * f.group; ++k) {
        const double v = w[n * K + k];
        lo = std::min(lo, v), hi = std::max(hi, v), amax = std::max(amax, std::fabs(v));
      }
      double scale = 0, zero = 0;
      if (f.zeros == ZeroMode::None) {
        scale = amax / top;
      } else {
        scale = (hi - lo) / top;
        zero = scale > 0 ? -lo / scale : 0;
      }
      if (!(scale > 0)) scale = 1;
      const std::uint32_t scode = isa::encode(f.activations, scale);
      const double s = scale_value(f, scode);
      q.scales[gi * N + n] = scode;
      if (f.zeros == ZeroMode::Integer) {
        const std::uint32_t zc = isa::encode(f.weights, zero);
        q.zeros[gi * N + n] = zc;
        zero = isa::decode(f.weights, zc);
      } else if (f.zeros == ZeroMode::Float) {
        const std::uint32_t zc = isa::encode(f.activations, zero);
        q.zeros[gi * N + n] = zc;
        zero = isa::decode(f.activations, zc);
      }
      for (std::int64_t k = gi * f.group; k < (gi + 1) * f.group; ++k)
        q.codes[n * K + k] = static_cast<std::uint8_t>(isa::encode(f.weights, w[n * K + k] / s + zero));
    }
  return q;
}

// k16 steps per chunk (the K extent of one pipeline stage): up to eight, and always a divisor of the
// group's steps, so that a group ends at the end of a chunk (a group of 80 has five steps: chunks of one
// step; of 96, six: chunks of six). Eight rather than four halves the per-iteration work (barrier, copy
// issue, loop and group bookkeeping: 40-50 warp instructions) per weight: int4 M = 1 on sm_80 went from
// 118 to 88 average issue slots per 1024 weights, int2 from 118 to 85, without spills at any M.
int chunk_steps(const QuantFormat& f) {
  const int per_group = f.group / 16;
  for (int c = std::min(8, per_group);; --c)
    if (per_group % c == 0) return c;
}

int block_rows(const Schedule& s) { return (s.weights_on_a ? 8 : 16) * s.m_tiles * (s.shared_decode ? s.warps : 1); }

std::string describe(const Schedule& s) {
  return fmt::format("w{} m{} s{} k{}{}{}{}", s.warps, s.m_tiles, s.stages, s.split_k,
                     s.weights_on_a ? " wa" : s.shared_decode ? " sd" : "",
                     s.unroll > 1 ? fmt::format(" u{}", s.unroll) : "", s.whole_tiles ? " whole" : "");
}

void validate(const Schedule& s) {
  if (s.warps != 1 && s.warps != 2 && s.warps != 4 && s.warps != 8)
    throw Error(fmt::format("schedule: warps must be 1, 2, 4 or 8, not {}", s.warps));
  // Four m16 tiles would hold 64 A registers per chunk next to two accumulators: it spills.
  if (s.m_tiles != 1 && s.m_tiles != 2) throw Error(fmt::format("schedule: m_tiles must be 1 or 2, not {}", s.m_tiles));
  if (s.stages != 0 && (s.stages < 2 || s.stages > 8))
    throw Error(fmt::format("schedule: stages must be 0 (direct loads) or 2..8, not {}", s.stages));
  if (s.split_k < 1 || s.split_k > 64) throw Error(fmt::format("schedule: split_k must be 1..64, not {}", s.split_k));
  if (s.unroll != 1 && s.unroll != 2 && s.unroll != 4)
    throw Error(fmt::format("schedule: unroll must be 1, 2 or 4, not {}", s.unroll));
  if (s.shared_decode && s.weights_on_a) throw Error("schedule: shared_decode (sd) and weights_on_a (wa) exclude each other");
  if (s.shared_decode && s.stages == 0) throw Error("schedule: shared_decode (sd) needs shared-memory stages (s2 or more)");
  // Every warp holds all 16 * warps columns of its rows in f32 registers (32 a 16-row tile at 4 warps).
  if (s.shared_decode && s.warps > 4) throw Error(fmt::format("schedule: shared_decode (sd) takes at most 4 warps, not {}", s.warps));
}

int default_multiprocessors(const std::string& arch) {
  static const std::map<std::string, int> counts = {{"sm_80", 108}, {"sm_86", 72},   {"sm_89", 142}, {"sm_90", 132},
                                                    {"sm_90a", 132}, {"sm_100", 148}, {"sm_120", 188}};
  auto it = counts.find(arch);
  if (it == counts.end())
    throw Error(fmt::format("unknown architecture '{}' (one of sm_80, sm_86, sm_89, sm_90, sm_90a, sm_100, sm_120)", arch));
  return it->second;
}

Schedule choose_schedule(const QuantFormat& f, std::int64_t M, std::int64_t N, std::int64_t K, const Target& target) {
  validate(f, M, N, K);
  const int sm_count = target.multiprocessors > 0 ? target.multiprocessors : default_multiprocessors(target.arch);
  Schedule s;
  // Four stages on every architecture: a power of two makes the stage index a mask (three cost a remainder,
  // 6-11 instructions an iteration on sm_80), and the fourth keeps more bytes in flight.
  s.stages = 4;
  // M <= 8: the weights on the mma A side, 8-row tiles (half the mma and ldmatrix work of a 16-row tile).
  // Bigger M tiles reuse each decoded weight for more rows; M <= 16 is memory-bound and takes one.
  s.weights_on_a = M <= 8;
  s.m_tiles = M <= 16 ? 1 : 2;
  // Narrow N: fewer warps so that blocks still cover the columns without idle warps.
  while (s.warps > 1 && N < 16LL * s.warps * 2) s.warps /= 2;
  // Split K until the grid has about two blocks per SM, keeping at least two chunks per slice (so the
  // pipeline has something to overlap) and only while the f32 partials (split x M x N, written and read
  // once; they stay in L2) are no more bytes than the weights. Measured on an H200 (docs/measured-h200.md): with
  // four-warp blocks the best split puts about 16 warps per SM on the grid (M = 16 and M = 64: k4 beat k2
  // and k8 by 10-30%); denser grids gained at most 6% at M = 1 and lost elsewhere.
  const std::int64_t chunks = K / (16 * chunk_steps(f));
  const double weight_bytes = static_cast<double>(N) * K * f.weights.bits() / 8;
  const auto split_for = [&](Schedule& x) {
    const std::int64_t rows = block_rows(x);
    const std::int64_t blocks = ((N + 16 * x.warps - 1) / (16 * x.warps)) * ((M + rows - 1) / rows);
    x.split_k = 1;
    while (x.split_k < 16 && blocks * x.split_k < 2LL * sm_count && chunks / (2 * x.split_k) >= 2 &&
           8.0 * 2 * x.split_k * M * N <= weight_bytes)
      x.split_k *= 2;
  };
  split_for(s);
  // Two chunks an iteration pay the barrier, the pipeline bookkeeping and the loop once for both (sm_80 SASS,
  // 4096 x 4096 g128, issue slots per 1024 weights: int4 M = 1 67.5 -> 60.5, M = 16 79.5 -> 70.2; f4e2m1
  // M = 1 93.5 -> 86.5) at twice the shared memory: taken for the memory-bound batches (M <= 16, whose
  // split-K grids hold about two blocks per SM anyway) while a slice still has two iterations and two blocks
  // still fit an SM; larger M keeps the resident warps it was measured with. Four chunks in two stages model
  // better still (f4e2m1 M = 1 83) but keep half the bytes in flight; the measured issue rate was for four
  // stages, so that waits for a GPU. Where four stages of two chunks do not fit twice (7 and 8-bit weights
  // at M = 16 on sm_80), three do: four chunks in flight instead of three, the stage index a remainder paid
  // once per two chunks (f7e4m2 M = 16: 614 -> 591 instructions per two chunks, f8e4m3 670 -> 630).
  // At M <= 8 with narrow codes (chunks of at most 5 KB), four chunks an iteration where they fit the same
  // way and a slice keeps two iterations: twelve chunks in flight, the loop's fixed cost over 16384 weights
  // a warp (sm_80, instructions per chunk: int2 M = 1 106 -> 102, int3 161 -> 153, int1 109 -> 103).
  const std::int64_t limit = backend_cuda::shared_memory_limit(target.arch);
  Schedule four = s;
  four.unroll = 4;
  Schedule twice = s;
  twice.unroll = 2;
  // M >= 64: the weights decoded once into shared memory for 64 or 128 rows (shared_decode) with the most
  // stages of which two blocks still fit an SM. sm_80 SASS, 8192 x 8192 int4 at M = 128, warp instructions
  // of a chunk of 128 K: 237 a 32-row block, against 377 a 64-row block (sd, m1) and 617 a 128-row one
  // (m2): 948, 754 and 617 for the same 128 rows. Modeled, not yet measured on a GPU.
  if (M >= 64) {
    for (int m_tiles : {2, 1}) {
      if (m_tiles == 2 && M < 128) continue;
      Schedule sd = s;
      sd.shared_decode = true;
      sd.m_tiles = m_tiles;
      split_for(sd);  // the same rule over the sd grid (its blocks hold 64 or 128 rows)
      for (int stages : {4, 3, 2}) {
        sd.stages = stages;
        if (2 * shared_bytes(f, sd) <= limit) return with_whole_tiles(sd, f, N, K);
      }
    }
  }
  if (s.weights_on_a && chunks / s.split_k >= 8 && 2 * shared_bytes(f, four) <= limit) {
    s = four;
  } else if (M <= 16 && chunks / s.split_k >= 4) {
    if (2 * shared_bytes(f, twice) > limit) twice.stages = 3;
    if (2 * shared_bytes(f, twice) <= limit) s = twice;
  }
  return with_whole_tiles(s, f, N, K);
}

namespace {

// Visits every (packed bit offset, n, k): streams of 8c codes, one per lane of each 16-column tile, in the
// order K chunk, tile, lane; within a stream the lane's codes in the mma B fragment order.
template <typename Fn>
void for_each_packed_code(const QuantFormat& f, std::int64_t N, std::int64_t K, Fn fn) {
  const int b = f.weights.bits(), c = chunk_steps(f);
  const std::int64_t tiles = N / 16;
  const RegisterLayout l = half_split_layout(weight_layout(1, c), b);
  for (std::int64_t kc = 0; kc < K / (16 * c); ++kc)
    for (std::int64_t tile = 0; tile < tiles; ++tile)
      for (int lane = 0; lane < 32; ++lane)
        for (int slot = 0; slot < 8 * c; ++slot) {
          const Shape kn = l.logical_index(lane, slot);
          const std::int64_t stream = (kc * tiles + tile) * 32 + lane;
          fn(static_cast<std::size_t>(stream * 8 * c * b + slot * b), tile * 16 + kn[1], kc * 16 * c + kn[0]);
        }
}

}  // namespace

DataType packed_code_type(DataType w) {
  return w.is_float() && w.bits() <= 8 && w.exponent_bits() == 1 ? DataType::signed_int(w.bits()) : w;
}

std::size_t packed_size(const QuantFormat& f, std::int64_t N, std::int64_t K) {
  validate(f, 1, N, K);
  return static_cast<std::size_t>(N * K / 8 * f.weights.bits());
}

std::vector<std::uint8_t> pack_weights(const QuantFormat& f, const std::vector<std::uint8_t>& codes, std::int64_t N,
                                       std::int64_t K) {
  validate(f, 1, N, K);
  if (static_cast<std::int64_t>(codes.size()) != N * K)
    throw Error(fmt::format("pack_weights: {} codes given for N x K = {} x {}", codes.size(), N, K));
  // Every code must be a finite value of the format: the kernels decode without NaN and inf patches (f8e4m3:
  // two instructions of five a pair), and a code beyond the format's bits would lose its high bits.
  const DataType t = f.weights;
  std::array<bool, 256> finite{};  // by code, decoded once
  for (std::uint32_t c = 0; c <= t.code_mask(); ++c) finite[c] = std::isfinite(isa::decode(t, c));
  for (std::int64_t i = 0; i < N * K; ++i) {
    const std::uint32_t code = codes[static_cast<std::size_t>(i)];
    if (code > t.code_mask())
      throw Error(fmt::format("pack_weights: the code of W[{}, {}] is {:#x}, beyond the {} bits of {}", i / K, i % K, code,
                              t.bits(), t.name()));
    if (!finite[code]) {
      const double v = isa::decode(t, code);
      throw Error(fmt::format("pack_weights: W[{}, {}] is {} (code {:#x}); the kernels take finite weights", i / K, i % K,
                              std::isnan(v) ? "NaN" : v > 0 ? "inf" : "-inf", code));
    }
  }
  std::vector<std::uint8_t> out(packed_size(f, N, K), 0);
  const int b = f.weights.bits();
  for_each_packed_code(f, N, K, [&](std::size_t bit, std::int64_t n, std::int64_t k) {
    isa::write_bits(out, bit, b, to_packed_code(f.weights, codes[n * K + k]));
  });
  return out;
}

std::vector<std::uint8_t> unpack_weights(const QuantFormat& f, const std::vector<std::uint8_t>& packed, std::int64_t N,
                                         std::int64_t K) {
  validate(f, 1, N, K);
  if (packed.size() != packed_size(f, N, K))
    throw Error(fmt::format("unpack_weights: {} bytes given, the layout has {}", packed.size(), packed_size(f, N, K)));
  std::vector<std::uint8_t> codes(static_cast<std::size_t>(N * K));
  const int b = f.weights.bits();
  for_each_packed_code(f, N, K, [&](std::size_t bit, std::int64_t n, std::int64_t k) {
    codes[n * K + k] = static_cast<std::uint8_t>(from_packed_code(f.weights, isa::read_bits(packed, bit, b), n, k));
  });
  return codes;
}

std::int64_t shared_bytes(const QuantFormat& f, const Schedule& s) {
  validate(s);
  if (s.stages == 0) return 0;
  // The verifier's placement: A first, the weights at the next 128-byte boundary.
  const StageTiles t = stage_tiles(f, s);
  const auto bytes = [](const SharedLayout& l, int bits) {
    return static_cast<std::int64_t>(isa::packed_bytes(static_cast<std::size_t>(l.span()), bits));
  };
  const auto aligned = [](std::int64_t v) { return (v + vm::kSharedAlignment - 1) / vm::kSharedAlignment * vm::kSharedAlignment; };
  // Split activations: two A tiles of bf16 (A_hi, A_lo), each at a 128-byte boundary.
  const std::int64_t a = (splits_activations(f, s) ? 2 : 1) * aligned(bytes(t.a, f.activations.bits())), w = bytes(t.w, 8);
  return s.shared_decode ? aligned(a + w) + bytes(decoded_tile(f, s), f.activations.bits()) : a + w;
}

bool whole_tiles_fit(const QuantFormat& f, const Schedule& s, std::int64_t N, std::int64_t K) {
  const std::int64_t k_unit = 16LL * chunk_steps(f) * s.unroll;
  return N % (16LL * s.warps) == 0 && K % k_unit == 0 && (k_unit & (k_unit - 1)) == 0;
}

Schedule with_whole_tiles(Schedule s, const QuantFormat& f, std::int64_t N, std::int64_t K) {
  s.whole_tiles = whole_tiles_fit(f, s, N, K);
  return s;
}

std::map<std::string, std::int64_t> quant_matmul_divisibility(const QuantFormat& f, const Schedule& s) {
  if (!s.whole_tiles) return {{"N", 16}, {"K", 16}};
  return {{"N", 16LL * s.warps}, {"K", 16LL * chunk_steps(f) * s.unroll}};
}

std::map<std::string, std::int64_t> quant_matmul_bounds(std::int64_t M, std::int64_t N, std::int64_t K) {
  const auto power_of_two = [](std::int64_t v, std::int64_t at_least) {
    std::int64_t p = at_least;
    while (p < v && p <= INT32_MAX / 2) p *= 2;
    return p < v ? std::int64_t{INT32_MAX} : p;
  };
  return {{"M", power_of_two(M, 1 << 14)}, {"N", power_of_two(N, 16)}, {"K", power_of_two(K, 16)}};
}

backend_cuda::EmitOptions quant_matmul_emit_options(const QuantFormat& f, const Schedule& s, std::int64_t M, std::int64_t N,
                                                    std::int64_t K) {
  return {quant_matmul_divisibility(f, s), quant_matmul_bounds(M, N, K)};
}

namespace {

// f6e5m0 (2^-14..2^16) and f7e5m1 (2^-15..1.5 * 2^16) with f16 activations: halved, their values are f16
// values (see quant_matmul).
bool decodes_halved(const QuantFormat& f) {
  return f.activations == DataType::f16() && f.weights.is_float() && f.weights.exponent_bits() == 5 &&
         f.weights.mantissa_bits() <= 1 && !f.weights.has_inf() && f.zeros == ZeroMode::None;
}

}  // namespace

bool splits_activations(const QuantFormat& f, const Schedule& s) {
  if (f.activations != DataType::f16() || !f.weights.is_float() || f.zeros != ZeroMode::None || s.shared_decode ||
      isa::max_finite(f.weights) <= isa::max_finite(DataType::f16()))
    return false;
  // f6e5m0 and f7e5m1 also decode halved to f16 (decodes_halved): a multiply, a clamp and the sign's mask
  // a pair where bf16 takes the sign and the moved fields, against one mma a fragment more. Split is the
  // cheaper for f7e5m1, and for f6e5m0 with the weights on A (a fragment of 256 weights, not 128): sm_80,
  // 4096 x 4096, slots per 1024 weights halved -> split: f7e5m1 M = 1 136.2 -> 109.5, M = 16 144.0 ->
  // 129.5; f6e5m0 M = 1 111 -> 102.0, but M = 16 120.2 -> 126.5.
  return !decodes_halved(f) || f.weights.mantissa_bits() > 0 || s.weights_on_a;
}

int split_exponent(const QuantFormat& f) {
  return f.weights.is_float() ? std::clamp(127 - f.weights.exponent_bias(), 0, 112) : 0;
}

vm::Program split_activations(const QuantFormat& f) {
  if (f.activations != DataType::f16())
    throw Error(fmt::format("split_activations: activations must be f16, not {}", f.activations.name()));
  const DataType f16 = DataType::f16(), bf16 = DataType::bf16(), f32 = DataType::f32();
  const int warps = 4, width = 8 * 32 * warps;  // each thread splits 8 consecutive activations: 16-byte loads
  const int e = split_exponent(f);
  vm::Builder bld(e ? fmt::format("split_activations_f16_x2e{}", e) : std::string("split_activations_f16"), warps);
  auto pa = bld.pointer("A", f16), ps = bld.pointer("As", bf16);
  // A as one run of M K values (K is a multiple of 16: whole 16-byte pieces), a block per `width` of them.
  Expr M = bld.i32("M"), K = bld.i32("K");
  bld.grid({isa::ceil_div(M * K, width)});
  const Expr count = bld.let("count", M * K);
  const Expr i0 = bld.let("i0", isa::block_idx_x() * width);
  const RegisterLayout run = spatial({1, 32 * warps}) * local({1, 8});
  auto A = bld.name(bld.global_view(pa, {1, count}, {0, 1}), "gA");
  // A 2^e: exact in f32 (65504 2^112 < 2^128), and scaling by 2^e commutes with rounding to bf16 (no
  // underflow: 2^-24 2^e is normal).
  auto a = bld.name(bld.cast_scaled(bld.load_global(A, {0, i0}, vm::reg(f16, {1, width}, run), true), f32, e), "a");
  // hi = A rounded to bf16, its magnitude at most 65280 (0x477f) times 2^e: A beyond it would round to 2^16,
  // and 2^(16 + e) overflows bf16 at e = 112. A - hi is exact in f32: a multiple of A's last place and
  // smaller than 8 of them (at most half of hi's last place, or 224 = 7 x 32 beyond 65280), it has at most
  // 3 significant bits, exact in bf16 too.
  const layout::Shape tile{1, width};
  const double bound = 65280.0 * std::ldexp(1.0, e);
  auto clamped = bld.min(bld.max(a, bld.alloc_register(vm::reg(f32, tile, run), -bound)), bld.alloc_register(vm::reg(f32, tile, run), bound));
  auto hi = bld.name(bld.cast(clamped, bf16), "hi");
  auto lo = bld.name(bld.cast(bld.sub(a, bld.cast(hi, f32)), bf16), "lo");
  auto As = bld.name(bld.global_view(ps, {2, count}, {count, 1}), "gAs");
  bld.store_global(hi, As, {0, i0}, true);
  bld.store_global(lo, As, {1, i0}, true);
  return bld.build();
}

vm::Program quant_matmul(const QuantFormat& f, const Schedule& s) {
  validate(s);
  const DataType act = f.activations, f32 = DataType::f32(), u8 = DataType::unsigned_int(8);
  const bool swap = s.weights_on_a, sd = s.shared_decode;
  const int W = s.warps, mt = s.m_tiles, rows = block_rows(s), b = f.weights.bits(), width = 16 * W, c = chunk_steps(f),
            steps_per_group = f.group / (16 * c), u = s.unroll;
  const bool split = s.split_k > 1;
  // When the activation type holds every value of the format exactly, the group scale is applied once per
  // group to an f32 partial sum (sum_k A q s = s sum_k A q); otherwise each weight is scaled through f32
  // before the product (e.g. f8e6m1 reaches 1.5 * 2^32, beyond f16).
  // f6e5m0 (2^-14..2^16) and f7e5m1 (2^-15..1.5 * 2^16) with f16 activations, where they do not split
  // (splits_activations: f6e5m0 with the weights on B, and under shared_decode), are the exceptions: halved,
  // their values are f16 values, so they decode at 2^-1 (Emitter::vector_cast: one packed multiply and a
  // clamp) and the sum is doubled after the loop, exactly, as the small-float bias factor below (sm_80,
  // 4096 x 4096, M = 1, issue slots per 1024 weights against the f32 path: f6e5m0 194 -> 111, f7e5m1
  // 184.5 -> 136.5). The products are exact then, where the f32 path rounds each scaled weight to f16.
  // Formats beyond f16 (splits_activations): decoded exactly to bf16, the mma on bf16 twice, for A_hi and A_lo.
  const bool split_a = splits_activations(f, s);
  const bool halved = decodes_halved(f) && !split_a;
  const DataType operand = split_a ? DataType::bf16() : act;  // the mma's operand type
  const bool fold_scale = halved || split_a || isa::max_finite(f.weights) <= isa::max_finite(act);
  // Small floats with one exponent bit are packed as integers (packed_code_type): they decode as integers
  // do (offset decode: one lop3 a pair and a correction mma, against four instructions a pair moving a
  // sign and its fields), and their factor 2^(1 - m) multiplies the f32 sum once after the loop.
  const DataType codes_type = packed_code_type(f.weights);
  const bool as_integer = codes_type != f.weights;
  const int integer_exp = as_integer ? 1 - f.weights.mantissa_bits() : 0;
  // Small floats decode by moving their fields into f16's, which leaves every value times 2^(bias - 15);
  // the cast normally multiplies that back per pair. With the scale applied per group (and no zero
  // points subtracted from the decoded weights) the factor is one of the whole sum instead, applied once
  // after the loop (exact in f32: 2^-15..2^16): one packed multiply less per pair of weights, and no
  // multiply of the scales either.
  // Under shared_decode the weights are scaled before they are stored (below): they decode to their values.
  const int bias_fold = halved ? -1
                        : !s.shared_decode && fold_scale && operand == DataType::f16() && f.weights.is_float() && !as_integer && f.zeros == ZeroMode::None
                            ? f.weights.exponent_bias() - 15
                            : 0;
  // Formats beyond f16 decode to f32 by moving their fields into f32's, which leaves every value times
  // 2^(bias - 127); the scale, converted to f32 per group anyway, takes the factor 2^(127 - bias) (exact: at
  // most 2^112 times an f16) instead of a multiply per weight.
  const int wide_fold = !fold_scale && f.weights.is_float() && f.zeros == ZeroMode::None ? f.weights.exponent_bias() - 127 : 0;
  std::string schedule = describe(s);
  std::erase(schedule, ' ');
  vm::Builder bld(fmt::format("quant_matmul_{}_{}_g{}{}{}_{}", f.weights.name(), act.name(), f.group,
                              f.zeros == ZeroMode::None ? "" : f.zeros == ZeroMode::Integer ? "_zint" : "_zfloat",
                              f.bias && !split ? "_bias" : "", schedule),
                  W);
  auto pa = bld.pointer(split_a ? "As" : "A", operand), pw = bld.pointer("Wp", u8), ps = bld.pointer("S", act);
  const int planes = split_a ? 2 : 1;  // A, or A_hi and A_lo
  vm::Pointer pz{};
  if (f.zeros == ZeroMode::Integer) pz = bld.pointer("Z", f.weights);
  if (f.zeros == ZeroMode::Float) pz = bld.pointer("Z", act);
  vm::Pointer pb{}, pc{}, pp{};
  if (split) {
    pp = bld.pointer("P", f32);
  } else {
    if (f.bias) pb = bld.pointer("B", act);
    pc = bld.pointer("C", act);
  }
  Expr M = bld.i32("M"), N = bld.i32("N"), K = bld.i32("K");
  bld.grid({isa::ceil_div(N, width), isa::ceil_div(M, rows), s.split_k});
  const Expr tiles = bld.let("tiles", N / 16);  // 16-column tiles of the packed weights
  const std::int64_t chunk_bytes = 32LL * W * c * b;
  // A as planes x M x K (one plane: a stride-0 first dimension).
  auto A = bld.name(bld.global_view(pa, {planes, M, K}, {split_a ? M * K : Expr(0), K, 1}), "gA");
  auto Wv = bld.name(bld.global_view(pw, {K / (16 * c) * tiles * 32, c * b}, {c * b, 1}), "gW");
  // Scales and zeros are broadcast over K inside a group: a stride-0 middle dimension.
  // Its extent is the taller of the tiles read from it: the weights' 16c rows of K, or the accumulator's
  // rows of M (a group's scale applied to the partial sum).
  const int broadcast = std::max(16 * c, rows);
  auto S = bld.name(bld.global_view(ps, {K / f.group, broadcast, N}, {N, 0, 1}), "gS");
  vm::Value Z{};
  if (f.zeros != ZeroMode::None) Z = bld.name(bld.global_view(pz, {K / f.group, broadcast, N}, {N, 0, 1}), "gZ");
  // The accumulator: C tiles [rows, width], or C^T tiles [width, rows] with the weights on the A side.
  // shared_decode: warp w holds rows [16 mt w, 16 mt (w + 1)) of the block and all of its columns.
  const RegisterLayout cl = swap ? spatial({W, 1}) * local({1, mt}) * mma_m16n8k16_c()
                            : sd ? spatial({W, 1}) * local({mt, 2 * W}) * mma_m16n8k16_c()
                                 : local({mt, 1}) * accumulator_layout(W);
  const RegisterLayout wl = weight_layout(W, c);
  const layout::Shape acc_shape = swap ? layout::Shape{width, rows} : layout::Shape{rows, width};
  // The same registers as the transposed tile: a view with the layout's dimensions swapped.
  auto transpose = [&](vm::Value v, DataType t, const RegisterLayout& l) {
    const RegisterLayout lt = permute(l, std::array{1, 0});
    return bld.view(v, vm::reg(t, lt.shape(), lt));
  };
  auto acc = bld.name(bld.alloc_register(vm::reg(f32, acc_shape, cl)), "acc");
  const Expr m0 = bld.let("m0", isa::block_idx_y() * rows), n0 = bld.let("n0", isa::block_idx_x() * width);
  // The first stream of this block's weights inside chunk kc: W tiles of 32 lanes.
  auto first_stream = [&](Expr kc) { return (kc * tiles + isa::block_idx_x() * W) * 32; };
  const DataType mid = fold_scale ? operand : f32;
  // One group's slice of scales (or zeros) in the layout `l` of a tile of `r` rows.
  auto group_tile = [&](vm::Value view, DataType t, Expr group, int r, const RegisterLayout& l) {
    auto t3 = bld.load_global(view, {group, 0, n0}, vm::reg(t, {1, r, width}, reshape(l, {1, r, width})), !s.whole_tiles);
    return bld.reshape(t3, {r, width});
  };
  // The chunks of K this block multiplies: all of them, or its slice under split-K (a multiple of the
  // unroll, so that only the last slice can end inside an iteration).
  const Expr chunks = bld.let("chunks", K / (16 * c));
  Expr lo = 0, hi = chunks;
  if (split) {
    const Expr per_slice = bld.let("slice_chunks", isa::ceil_div(chunks, s.split_k * u) * u);
    lo = bld.let("lo", isa::min(chunks, isa::block_idx_z() * per_slice));
    hi = bld.let("hi", isa::min(chunks, lo + per_slice));
  }
  // The chunk kc of A and of the packed weights, as register tiles, from global memory or from stage
  // `stage` of the shared buffers.
  vm::Value sW{}, sWd{}, gWflat{}, gWchunks{};
  std::vector<vm::Value> sA(static_cast<std::size_t>(planes));
  const bool pipelined = s.stages >= 2;
  const int stages = s.stages;
  // A as the mma A operand, or (swap) A^T as the B operand, loaded in A's [rows, 16c] orientation.
  const RegisterLayout at_layout = replicated(W) * local({c, mt}) * mma_m16n8k16_b();
  const RegisterLayout a_layout = swap ? permute(at_layout, std::array{1, 0}) : replicated(W) * local({mt, c}) * mma_m16n8k16_a();
  const RegisterLayout byte_layout = spatial({32 * W, 1}) * local({1, c * b});
  const bool in_pieces = weight_pieces(f) > 0;  // the stage layouts: stage_tiles
  const int pieces = in_pieces ? weight_pieces(f) : 1;
  const layout::Shape stage_tile = in_pieces ? layout::Shape{1, 32 * W, pieces, 16} : layout::Shape{1, 1, 1, chunk_bytes};
  const RegisterLayout stage_layout = in_pieces ? spatial({1, 32 * W, 1, 1}) * local({1, 1, pieces, 16})
                                                : reshape(byte_layout, stage_tile);
  if (pipelined) {
    // A stage is `u` chunks: sub-stage stage * u + j holds the iteration's j-th.
    const StageTiles shared = stage_tiles(f, s);
    for (int p = 0; p < planes; ++p) sA[p] = bld.name(bld.alloc_shared(operand, shared.a), p ? "sAlo" : split_a ? "sAhi" : "sA");
    sW = bld.name(bld.alloc_shared(u8, shared.w), "sW");
    if (sd) sWd = bld.name(bld.alloc_shared(act, decoded_tile(f, s)), "sWd");
    const Expr streams = K / (16 * c) * tiles * 32;
    gWflat = in_pieces ? bld.global_view(pw, {1, streams, pieces, 16}, {0, c * b, 16, 1})
                       : bld.global_view(pw, {1, 1, 1, streams * (c * b)}, {0, 0, 0, 1});  // the shared tile's rank
    gWflat = bld.name(gWflat, "gWbytes");
    // Streams stored whole (widths but 4 and 8) whose chunk does not split evenly over the threads (a 3-bit
    // chunk is 1.5 16-byte pieces a thread): the u chunks of a stage in one copy, rows of the chunk regions,
    // so that the pieces do (four 3-bit chunks are 6 a thread; int3 M = 1 u4 on sm_80 600 -> 574
    // instructions). Where one chunk already splits evenly (2 and 6-bit), the per-chunk copies address for
    // less (the runtime row stride cost int2 M = 1 14 instructions more an iteration).
    const std::int64_t pieces_per_chunk = stage_tile[3] / 16;
    if (!in_pieces && u > 1 && pieces_per_chunk % (32 * W) != 0) {
      const Expr region = tiles * (32 * c * b);
      gWchunks = bld.name(bld.global_view(pw, {K / (16 * c), 1, 1, region}, {region, 0, 0, 1}), "gWchunks");
    }
  }
  // Copies the u chunks from kc on (when this block multiplies the first) into a shared stage; one commit
  // per call, so that every iteration closes exactly one group and wait_group(stages - 2) always means
  // "the iteration's chunks have landed". Only the last slice can end inside a stage; its chunks past the
  // end lie past K as well, so the copy's bounds fill them with zeros, whose products add nothing. In whole
  // tiles no stage ends early and every block's columns exist: the weights go without bounds tests.
  // A's rows past M are masked; so is K but in whole tiles, where every chunk a stage copies exists (the
  // copy's row tests and offsets are then the same every iteration).
  const vm::Mask a_mask = vm::Mask::along(s.whole_tiles ? std::vector<int>{1} : std::vector<int>{1, 2});
  auto issue = [&](Expr kc, Expr stage) {
    bld.if_then(kc < hi, [&] {
      for (int j = 0; j < u; ++j) {
        const Expr kj = kc + j, sub = stage * u + j;
        for (int p = 0; p < planes; ++p) bld.copy_async(sA[p], {sub, 0, 0}, A, {p, m0, kj * (16 * c)}, {1, rows, 16 * c}, a_mask);
        if (gWchunks.name.empty()) {
          const std::vector<Expr> from = in_pieces ? std::vector<Expr>{0, first_stream(kj), 0, 0}
                                                   : std::vector<Expr>{0, 0, 0, first_stream(kj) * (c * b)};
          bld.copy_async(sW, {sub, 0, 0, 0}, gWflat, from, {stage_tile.begin(), stage_tile.end()}, !s.whole_tiles);
        }
      }
      if (!gWchunks.name.empty())
        bld.copy_async(sW, {stage * u, 0, 0, 0}, gWchunks, {kc, 0, 0, isa::block_idx_x() * (W * 32 * c * b)},
                       {u, 1, 1, stage_tile[3]}, !s.whole_tiles);
    });
    bld.commit_group();
  };
  if (pipelined)
    for (int j = 0; j + 1 < stages; ++j) issue(lo + j * u, j);  // the prologue fills stages - 1 stages
  // One loop over this block's chunks; the f32 partial sum of a scale group joins the result at the group's
  // last chunk (or the slice's, under split-K, where a slice may start or end inside a group).
  vm::Value part{};
  if (!sd) part = bld.name(bld.alloc_register(vm::reg(f32, acc_shape, cl)), "part");
  // The loop counts iterations from 0 (i >= 0 lets the stage index be an unsigned remainder). An iteration
  // multiplies u chunks. In the last slice some of them can lie past K: their loads are masked to zeros
  // (A, weights, scales and zeros alike), so they add nothing and need no branch.
  bld.for_range("i", 0, isa::ceil_div(hi - lo, u), [&](Expr i) {
    const Expr kc0 = bld.let("kc", lo + i * u);
    // Names of the j-th chunk's values: "w", or "w0", "w1"... when an iteration has several chunks.
    const auto nm = [&](const char* base, int j) { return u == 1 ? std::string(base) : fmt::format("{}{}", base, j); };
    std::vector<Expr> kcs, gs;
    for (int j = 0; j < u; ++j) {
      kcs.push_back(j == 0 ? kc0 : bld.let(nm("kc", j), kc0 + j));
      gs.push_back(bld.let(nm("g", j), kcs[j] / steps_per_group));
    }
    // Global loads of the chunks' group data first: their latency overlaps the barrier, the shared loads,
    // the decode and the mma instead of stalling the instructions that use them. A group's scale (applied
    // to the partial sum) is loaded here when every chunk ends a group; otherwise once, at the group's end.
    const auto group_scale = [&](Expr g, int j) {
      const RegisterLayout l = swap ? permute(cl, std::array{1, 0}) : cl;
      vm::Value scale = group_tile(S, act, g, rows, l);
      if (swap) scale = transpose(scale, act, l);
      return bld.name(bld.cast(scale, f32), nm("scale", j));
    };
    const DataType zt = f.zeros == ZeroMode::Integer ? f.weights : act;
    std::vector<vm::Value> early_scale(u), zeros(u), weight_scale(u);
    for (int j = 0; j < u; ++j) {
      if (fold_scale && !sd && steps_per_group == 1) early_scale[j] = group_scale(gs[j], j);
      if (f.zeros != ZeroMode::None) zeros[j] = group_tile(Z, zt, gs[j], 16 * c, wl);
      if (f.zeros != ZeroMode::None && integer_exp)  // zero points in the integers' units: z * 2^(m - 1), exact
        zeros[j] = bld.mul(zeros[j], bld.alloc_register(vm::reg(zt, {16 * c, width}, wl), std::ldexp(1.0, -integer_exp)));
      if (!fold_scale || sd) weight_scale[j] = group_tile(S, act, gs[j], 16 * c, wl);
    }
    Expr stage = 0;
    if (pipelined) {
      bld.wait_group(stages - 2);
      bld.sync_threads();  // the chunks are visible to all, and the stage the next copy refills is no longer read
      issue(kc0 + (stages - 1) * u, (i + (stages - 1)) % stages);
      stage = bld.let("stage", i % stages);
    }
    for (int j = 0; j < u; ++j) {
      const Expr kc = kcs[j];
      std::vector<vm::Value> a(static_cast<std::size_t>(planes));
      vm::Value bytes{};
      for (int p = 0; p < planes && !sd; ++p) {
        const vm::TensorType a_tile = vm::reg(operand, {1, rows, 16 * c}, reshape(a_layout, {1, rows, 16 * c}));
        a[p] = bld.reshape(pipelined ? bld.load_shared(sA[p], {stage * u + j, 0, 0}, a_tile)
                                     : bld.load_global(A, {p, m0, kc * (16 * c)}, a_tile, true),
                           {rows, 16 * c});
        a[p] = bld.name(a[p], nm(p ? "alo" : "a", j));
      }
      if (pipelined) {
        bytes = bld.reshape(bld.load_shared(sW, {stage * u + j, 0, 0, 0}, vm::reg(u8, stage_tile, stage_layout)), {32 * W, c * b});
      } else {
        bytes = bld.load_global(Wv, {first_stream(kc), 0}, vm::reg(u8, {32 * W, c * b}, byte_layout), !s.whole_tiles);
      }
      bytes = bld.name(bytes, nm("bytes", j));
      auto codes = bld.name(bld.view(bytes, vm::reg(codes_type, {16 * c, width}, half_split_layout(wl, b))), nm("codes", j));
      // Split activations carry 2^(127 - bias) (split_exponent): the weights decode to their moved fields.
      const int fold = split_a ? -split_exponent(f) : bias_fold ? bias_fold : wide_fold;
      // pack_weights takes finite codes only: the decode skips the NaN and inf patches ({finite}).
      const vm::TensorType wt = vm::reg(mid, {16 * c, width}, wl);
      auto w = bld.name(codes_type.is_float() ? bld.cast_finite(codes, wt, fold)
                        : fold                ? bld.cast_scaled(codes, wt, fold)
                                              : bld.cast(codes, wt),
                        nm("w", j));
      if (f.zeros != ZeroMode::None) w = bld.name(bld.sub(w, zt == mid ? zeros[j] : bld.cast(zeros[j], mid)), nm("shifted", j));
      if (sd && fold_scale) {
        // Shared decode scales each weight in the activation type, a packed multiply a pair (rounding w s
        // once, as the f32 path below does): a warp then multiplies all of the block's columns without
        // per-column scales, partial sums or their f32 registers. A decoded f6e5m0 or f7e5m1 is w / 2
        // (doubled after).
        w = bld.name(bld.mul(w, weight_scale[j]), nm("scaled", j));
      } else if (!fold_scale) {
        auto scale = wide_fold ? bld.cast_scaled(weight_scale[j], f32, -wide_fold) : bld.cast(weight_scale[j], f32);
        w = bld.name(bld.cast(bld.mul(w, scale), act), nm("scaled", j));
      }
      if (sd) {
        // Every warp's 16 columns into the shared tile; after the barrier each warp multiplies its rows by all
        // of them, one k step at a time (the A and weight fragments of a step: 4 mt + 4 W registers).
        // The tile is (n, k) where the registers are (k, n): the same registers under the last two dimensions
        // swapped.
        const auto nk = [&](vm::Value v, const RegisterLayout& l, layout::Shape kn) {
          const RegisterLayout swapped = permute(reshape(l, kn), std::array{0, 1, 3, 2});
          return bld.view(bld.reshape(v, kn), vm::reg(act, swapped.shape(), swapped));
        };
        bld.store_shared(bld.reshape(nk(w, wl, {1, c, 16, width}), fragment_split(W, c)), sWd, {j, 0, 0, 0, 0, 0, 0});
        bld.sync_threads();
        const RegisterLayout a_step = spatial({W, 1}) * local({mt, 1}) * mma_m16n8k16_a();
        const RegisterLayout w_step = replicated(W) * local({1, 2 * W}) * mma_m16n8k16_b();
        const RegisterLayout w_tile = permute(reshape(w_step, {1, 1, 16, width}), std::array{0, 1, 3, 2});
        const RegisterLayout w_split = reshape(w_tile, fragment_split(W, 1));
        for (int kk = 0; kk < c; ++kk) {
          auto ak = bld.reshape(bld.load_shared(sA[0], {stage * u + j, 0, 16 * kk}, vm::reg(act, {1, rows, 16}, reshape(a_step, {1, rows, 16}))),
                                {rows, 16});
          auto wk = bld.reshape(bld.load_shared(sWd, {j, kk, 0, 0, 0, 0, 0}, vm::reg(act, w_split.shape(), w_split)),
                                {1, 1, width, 16});
          wk = bld.reshape(bld.view(wk, vm::reg(act, {1, 1, 16, width}, reshape(w_step, {1, 1, 16, width}))), {16, width});
          bld.dot(acc, bld.name(ak, fmt::format("{}_{}", nm("a", j), kk)), bld.name(wk, fmt::format("{}_{}", nm("wd", j), kk)));
        }
        continue;  // scaled weights: no partial sum to close at the group's end
      }
      for (const vm::Value& ap : a) {  // A, or A_hi then A_lo: the same weights twice
        if (swap) bld.dot(part, transpose(w, operand, wl), transpose(ap, operand, a_layout));
        else bld.dot(part, ap, w);
      }
      const Expr group_end = isa::eq(kc % steps_per_group, Expr(steps_per_group - 1));
      bld.if_then(split ? group_end || isa::eq(kc, hi - 1) : group_end, [&] {
        if (fold_scale) {
          bld.assign(acc, bld.fma(part, early_scale[j].name.empty() ? group_scale(gs[j], j) : early_scale[j], acc));
        } else {
          bld.assign(acc, bld.add(acc, part));
        }
        bld.assign(part, bld.alloc_register(vm::reg(f32, acc_shape, cl)));  // zero for the next group
      });
    }
  });
  // Every weight was decoded times 2^(bias - 15) (f6e5m0, f7e5m1: 2^-1), or as an integer 2^(m - 1) times its value.
  if (const int after_loop = as_integer ? integer_exp : -bias_fold)
    bld.assign(acc, bld.name(bld.mul(acc, bld.alloc_register(vm::reg(f32, acc_shape, cl), std::ldexp(1.0, after_loop))), "unbiased"));
  if (pipelined) bld.wait_group(0);  // nothing is in flight after the last chunk; this states it
  if (split) {  // this slice's f32 partial sums; splitk_reduce adds the slices (and the bias)
    if (swap) {
      auto P = bld.name(bld.global_view(pp, {s.split_k, N, M}, {M * N, 1, N}), "gP");
      bld.store_global(bld.reshape(acc, {1, width, rows}), P, {isa::block_idx_z(), n0, m0}, true);
    } else {
      auto P = bld.name(bld.global_view(pp, {s.split_k, M, N}, {M * N, N, 1}), "gP");
      bld.store_global(bld.reshape(acc, {1, rows, width}), P, {isa::block_idx_z(), m0, n0}, true);
    }
    return bld.build();
  }
  vm::Value result = acc;
  if (f.bias) {  // bias[n] broadcast over the rows: a stride-0 dimension
    auto B = swap ? bld.global_view(pb, {N, rows}, {1, 0}) : bld.global_view(pb, {rows, N}, {0, 1});
    auto bias = bld.load_global(bld.name(B, "gB"), swap ? std::vector<Expr>{n0, 0} : std::vector<Expr>{0, n0},
                                vm::reg(act, acc_shape, cl), true);
    result = bld.add(acc, bld.name(bld.cast(bias, f32), "bias"));
  }
  // C, or C^T as a view with swapped strides.
  auto C = bld.name(swap ? bld.global_view(pc, {N, M}, {1, N}) : bld.global_view(pc, {M, N}, {N, 1}), "gC");
  bld.store_global(bld.name(bld.cast(result, act), "out"), C, swap ? std::vector<Expr>{n0, m0} : std::vector<Expr>{m0, n0}, true);
  return bld.build();
}

vm::Program splitk_reduce(const QuantFormat& f, int split_k) {
  if (split_k < 2 || split_k > 64) throw Error(fmt::format("splitk_reduce: split_k must be 2..64, not {}", split_k));
  const DataType act = f.activations, f32 = DataType::f32();
  const int warps = 4, width = 8 * 32 * warps;  // each thread sums 8 consecutive columns: 32-byte loads
  vm::Builder bld(fmt::format("splitk_reduce_{}{}_k{}", act.name(), f.bias ? "_bias" : "", split_k), warps);
  auto pp = bld.pointer("P", f32);
  vm::Pointer pb{};
  if (f.bias) pb = bld.pointer("B", act);
  auto pc = bld.pointer("C", act);
  Expr M = bld.i32("M"), N = bld.i32("N");
  bld.grid({isa::ceil_div(N, width), M});
  const Expr m = bld.let("m", isa::block_idx_y()), n0 = bld.let("n0", isa::block_idx_x() * width);
  const RegisterLayout row = spatial({1, 1, 32 * warps}) * local({1, 1, 8});
  auto P = bld.name(bld.global_view(pp, {split_k, M, N}, {M * N, N, 1}), "gP");
  auto parts = bld.name(bld.load_global(P, {0, m, n0}, vm::reg(f32, {split_k, 1, width}, local({split_k, 1, 1}) * row), true), "parts");
  vm::Value sum = bld.name(bld.reduce(parts, {0}, "add"), "sum");
  if (f.bias) {
    auto B = bld.name(bld.global_view(pb, {1, 1, N}, {0, 0, 1}), "gB");
    sum = bld.add(sum, bld.cast(bld.load_global(B, {0, 0, n0}, vm::reg(act, {1, 1, width}, row), true), f32));
  }
  auto C = bld.name(bld.global_view(pc, {1, M, N}, {0, N, 1}), "gC");
  bld.store_global(bld.name(bld.cast(sum, act), "out"), C, {0, m, n0}, true);
  return bld.build();
}

std::vector<double> reference_quant_matmul(const QuantFormat& f, const std::vector<std::uint32_t>& a, const Quantized& q,
                                           std::int64_t M, std::int64_t N, std::int64_t K,
                                           const std::vector<std::uint32_t>& bias) {
  std::vector<double> w(static_cast<std::size_t>(N * K));
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t k = 0; k < K; ++k) {
      const std::int64_t gi = (k / f.group) * N + n;
      double z = 0;
      if (f.zeros == ZeroMode::Integer) z = isa::decode(f.weights, q.zeros[gi]);
      if (f.zeros == ZeroMode::Float) z = isa::decode(f.activations, q.zeros[gi]);
      w[n * K + k] = (isa::decode(f.weights, q.codes[n * K + k]) - z) * isa::decode(f.activations, q.scales[gi]);
    }
  std::vector<double> c(static_cast<std::size_t>(M * N), 0.0);
  for (std::int64_t m = 0; m < M; ++m)
    for (std::int64_t n = 0; n < N; ++n) {
      double sum = f.bias ? isa::decode(f.activations, bias.at(static_cast<std::size_t>(n))) : 0.0;
      for (std::int64_t k = 0; k < K; ++k) sum += isa::decode(f.activations, a[m * K + k]) * w[n * K + k];
      c[m * N + n] = sum;
    }
  return c;
}

}  // namespace anybit::programs
