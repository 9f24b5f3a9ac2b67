#include "programs/quant_matmul.h"

#include <algorithm>
#include <cmath>

#include "isa/bitpack.h"
#include "isa/error.h"
#include "layout/mma_layouts.h"
#include "vm/builder.h"

namespace anybit::programs {

namespace {

using isa::DataType;
using isa::Expr;
using namespace layout;

// Layout of a warp group's 16 x (16 * warps) weight tile (k x n) in the mma B operand arrangement:
// warps side by side along n, two n8 fragments per warp.
// K steps of 16 whose codes one lane loads at once: up to 4 (8 * 4 codes, 4b bytes: 16 for int4), never
// more than a scale group.
int chunk_steps(const QuantFormat& f) { return std::min(4, f.group / 16); }

// Layout of a warp group's (16 * steps) x (16 * warps) weight tile (k x n) in the mma B operand
// arrangement: warps side by side along n, two n8 fragments per warp, K steps in local slots.
RegisterLayout weight_layout(int warps, int steps) {
  return local({steps, 1}) * spatial({1, warps}) * local({1, 2}) * mma_m16n8k16_b();
}
RegisterLayout accumulator_layout(int warps) { return spatial({1, warps}) * local({1, 2}) * mma_m16n8k16_c(); }


double scale_value(const QuantFormat& f, std::uint32_t code) { return isa::decode(f.activations, code); }

}  // namespace

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

namespace {

// Visits every (thread-stream bit offset, n, k) of the packed layout.
template <typename Fn>
void for_each_packed_code(const QuantFormat& f, std::int64_t N, std::int64_t K, const Schedule& s, Fn fn) {
  const int b = f.weights.bits(), threads = 32 * s.warps, c = chunk_steps(f);
  const std::int64_t width = 16 * s.warps, blocks = (N + width - 1) / width;
  const RegisterLayout l = weight_layout(s.warps, c);
  for (std::int64_t kc = 0; kc < K / (16 * c); ++kc)
    for (std::int64_t nb = 0; nb < blocks; ++nb)
      for (int t = 0; t < threads; ++t)
        for (int slot = 0; slot < 8 * c; ++slot) {
          const Shape kn = l.logical_index(t, slot);
          const std::int64_t thread = (kc * blocks + nb) * threads + t;
          fn(static_cast<std::size_t>(thread * 8 * c * b + slot * b), nb * width + kn[1], kc * 16 * c + kn[0]);
        }
}

std::size_t packed_size(const QuantFormat& f, std::int64_t N, std::int64_t K, const Schedule& s) {
  const std::int64_t width = 16 * s.warps, blocks = (N + width - 1) / width;
  return static_cast<std::size_t>((K / 16) * blocks * 32 * s.warps * f.weights.bits());  // b bytes per lane and K step
}

}  // namespace

std::vector<std::uint8_t> pack_weights(const QuantFormat& f, const std::vector<std::uint8_t>& codes, std::int64_t N,
                                       std::int64_t K, const Schedule& s) {
  validate(f, 1, N, K);
  if (static_cast<std::int64_t>(codes.size()) != N * K)
    throw Error(fmt::format("pack_weights: {} codes given for N x K = {} x {}", codes.size(), N, K));
  std::vector<std::uint8_t> out(packed_size(f, N, K, s), 0);
  const int b = f.weights.bits();
  for_each_packed_code(f, N, K, s, [&](std::size_t bit, std::int64_t n, std::int64_t k) {
    if (n < N) isa::write_bits(out, bit, b, codes[n * K + k]);
  });
  return out;
}

std::vector<std::uint8_t> unpack_weights(const QuantFormat& f, const std::vector<std::uint8_t>& packed, std::int64_t N,
                                         std::int64_t K, const Schedule& s) {
  validate(f, 1, N, K);
  if (packed.size() != packed_size(f, N, K, s))
    throw Error(fmt::format("unpack_weights: {} bytes given, the layout has {}", packed.size(), packed_size(f, N, K, s)));
  std::vector<std::uint8_t> codes(static_cast<std::size_t>(N * K));
  const int b = f.weights.bits();
  for_each_packed_code(f, N, K, s, [&](std::size_t bit, std::int64_t n, std::int64_t k) {
    if (n < N) codes[n * K + k] = static_cast<std::uint8_t>(isa::read_bits(packed, bit, b));
  });
  return codes;
}

vm::Program quant_matmul(const QuantFormat& f, const Schedule& s) {
  const DataType act = f.activations, f32 = DataType::f32(), u8 = DataType::unsigned_int(8);
  const int W = s.warps, b = f.weights.bits(), width = 16 * W, c = chunk_steps(f), steps_per_group = f.group / (16 * c);
  // When the activation type holds every value of the format exactly, the group scale is applied once per
  // group to an f32 partial sum (sum_k A q s = s sum_k A q); otherwise each weight is scaled through f32
  // before the product (e.g. f7e5m1 reaches 98304, beyond f16).
  const bool fold_scale = isa::max_finite(f.weights) <= isa::max_finite(act);
  vm::Builder bld(fmt::format("quant_matmul_{}_{}_g{}{}{}", f.weights.name(), act.name(), f.group,
                              f.zeros == ZeroMode::None ? "" : f.zeros == ZeroMode::Integer ? "_zint" : "_zfloat",
                              f.bias ? "_bias" : ""),
                  W);
  auto pa = bld.pointer("A", act), pw = bld.pointer("Wp", u8), ps = bld.pointer("S", act);
  vm::Pointer pz{};
  if (f.zeros == ZeroMode::Integer) pz = bld.pointer("Z", f.weights);
  if (f.zeros == ZeroMode::Float) pz = bld.pointer("Z", act);
  vm::Pointer pb{};
  if (f.bias) pb = bld.pointer("B", act);
  auto pc = bld.pointer("C", act);
  Expr M = bld.i32("M"), N = bld.i32("N"), K = bld.i32("K");
  bld.grid({isa::ceil_div(N, width), isa::ceil_div(M, 16)});
  const Expr blocks_n = bld.let("blocks_n", isa::ceil_div(N, width));
  auto A = bld.name(bld.global_view(pa, {M, K}, {K, 1}), "gA");
  auto Wv = bld.name(bld.global_view(pw, {K / (16 * c) * blocks_n * 32 * W, c * b}, {c * b, 1}), "gW");
  // Scales and zeros are broadcast over K inside a group: a stride-0 middle dimension.
  auto S = bld.name(bld.global_view(ps, {K / f.group, 16 * c, N}, {N, 0, 1}), "gS");
  vm::Value Z{};
  if (f.zeros != ZeroMode::None) Z = bld.name(bld.global_view(pz, {K / f.group, 16 * c, N}, {N, 0, 1}), "gZ");
  auto C = bld.name(bld.global_view(pc, {M, N}, {N, 1}), "gC");
  const RegisterLayout cl = accumulator_layout(W), wl = weight_layout(W, c);
  auto acc = bld.name(bld.alloc_register(vm::reg(f32, {16, width}, cl)), "acc");
  const Expr m0 = bld.let("m0", isa::block_idx_y() * 16), n0 = bld.let("n0", isa::block_idx_x() * width);
  const DataType mid = fold_scale ? act : f32;
  // One group's slice of scales (or zeros) in the layout `l` of a tile of `rows` rows.
  auto group_tile = [&](vm::Value view, DataType t, Expr group, int rows, const RegisterLayout& l) {
    auto t3 = bld.load_global(view, {group, 0, n0}, vm::reg(t, {1, rows, width}, reshape(l, {1, rows, width})), true);
    return bld.reshape(t3, {rows, width});
  };
  // The chunk kc of A and of the packed weights, as register tiles, from global memory or from stage
  // `stage` of the shared buffers.
  vm::Value sA{}, sW{}, gWflat{}, gA3{};
  const std::int64_t chunk_bytes = 32LL * W * c * b;
  const bool pipelined = s.stages >= 2;
  const int stages = s.stages;
  const RegisterLayout a_layout = replicated(W) * local({1, c}) * mma_m16n8k16_a();
  const RegisterLayout byte_layout = spatial({32 * W, 1}) * local({1, c * b});
  if (pipelined) {
    // A rows of 16c f16 values; the XOR swizzle spreads an ldmatrix's eight 16-byte rows over the banks.
    const int chunks_per_row = 2 * c;  // 16-byte chunks in a row of 16c f16 values
    const int bits = chunks_per_row >= 8 ? 3 : chunks_per_row >= 4 ? 2 : 1;
    sA = bld.name(bld.alloc_shared(act, SharedLayout::row_major({stages, 16, 16 * c}, Swizzle{bits, 3, bits})), "sA");
    sW = bld.name(bld.alloc_shared(u8, SharedLayout::row_major({stages, 1, chunk_bytes})), "sW");
    // Views of the same memory with the shared tiles' rank: a size-1 leading dimension.
    gWflat = bld.name(bld.global_view(pw, {1, 1, K / (16 * c) * blocks_n * chunk_bytes}, {0, 0, 1}), "gWbytes");
    gA3 = bld.name(bld.global_view(pa, {1, M, K}, {0, K, 1}), "gA3");
  }
  const Expr chunks = bld.let("chunks", K / (16 * c));
  // Copies chunk kc (when it exists) into a shared stage; one commit per call, so that every iteration
  // closes exactly one group and wait_group(stages - 2) always means "chunk kc has landed".
  auto issue = [&](Expr kc, Expr stage) {
    bld.if_then(kc < chunks, [&] {
      bld.copy_async(sA, {stage, 0, 0}, gA3, {0, m0, kc * (16 * c)}, {1, 16, 16 * c});
      bld.copy_async(sW, {stage, 0, 0}, gWflat, {0, 0, (kc * blocks_n + isa::block_idx_x()) * chunk_bytes}, {1, 1, chunk_bytes});
    });
    bld.commit_group();
  };
  if (pipelined)
    for (int j = 0; j + 1 < stages; ++j) issue(j, j);  // the prologue fills stages - 1 stages
  bld.for_range("g", 0, K / f.group, [&](Expr g) {
    auto part = bld.name(bld.alloc_register(vm::reg(f32, {16, width}, cl)), "part");
    bld.for_range("step", 0, steps_per_group, [&](Expr step) {
      const Expr kc = bld.let("kc", g * steps_per_group + step);
      vm::Value a{}, bytes{};
      if (pipelined) {
        bld.wait_group(stages - 2);
        bld.sync_threads();  // chunk kc is visible to all, and the stage the next copy refills is no longer read
        issue(kc + (stages - 1), (kc + (stages - 1)) % stages);
        const Expr stage = bld.let("stage", kc % stages);
        a = bld.reshape(bld.load_shared(sA, {stage, 0, 0}, vm::reg(act, {1, 16, 16 * c}, reshape(a_layout, {1, 16, 16 * c}))),
                        {16, 16 * c});
        bytes = bld.reshape(bld.load_shared(sW, {stage, 0, 0}, vm::reg(u8, {1, 1, chunk_bytes}, reshape(byte_layout, {1, 1, chunk_bytes}))),
                            {32 * W, c * b});
      } else {
        a = bld.load_global(A, {m0, kc * (16 * c)}, vm::reg(act, {16, 16 * c}, a_layout), true);
        bytes = bld.load_global(Wv, {(kc * blocks_n + isa::block_idx_x()) * (32 * W), 0}, vm::reg(u8, {32 * W, c * b}, byte_layout));
      }
      a = bld.name(a, "a");
      bytes = bld.name(bytes, "bytes");
      auto codes = bld.name(bld.view(bytes, vm::reg(f.weights, {16 * c, width}, wl)), "codes");
      auto w = bld.name(bld.cast(codes, mid), "w");
      if (f.zeros != ZeroMode::None) {
        const DataType zt = f.zeros == ZeroMode::Integer ? f.weights : act;
        auto z = group_tile(Z, zt, g, 16 * c, wl);
        w = bld.name(bld.sub(w, zt == mid ? z : bld.cast(z, mid)), "shifted");
      }
      if (!fold_scale) {
        auto scale = bld.cast(group_tile(S, act, g, 16 * c, wl), f32);
        w = bld.name(bld.cast(bld.mul(w, scale), act), "scaled");
      }
      bld.dot(part, a, w);
    });
    if (fold_scale) {
      auto scale = bld.name(bld.cast(group_tile(S, act, g, 16, cl), f32), "scale");
      bld.assign(acc, bld.fma(part, scale, acc));
    } else {
      bld.assign(acc, bld.add(acc, part));
    }
  });
  if (pipelined) bld.wait_group(0);  // nothing is in flight after the last chunk; this states it
  vm::Value result = acc;
  if (f.bias) {  // bias[n] broadcast over the rows: a stride-0 first dimension
    auto B = bld.name(bld.global_view(pb, {16, N}, {0, 1}), "gB");
    auto bias = bld.name(bld.cast(bld.load_global(B, {0, n0}, vm::reg(act, {16, width}, cl), true), f32), "bias");
    result = bld.add(acc, bias);
  }
  bld.store_global(bld.name(bld.cast(result, act), "out"), C, {m0, n0}, true);
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
