#include "programs/examples.h"

#include "isa/bitpack.h"
#include "layout/mma_layouts.h"
#include "vm/builder.h"

namespace anybit::programs {

using isa::DataType;
using isa::Expr;
using namespace layout;

vm::Program vector_add() {
  const DataType f32 = DataType::f32();
  vm::Builder b("vector_add", /*warps=*/2);
  auto a = b.pointer("a", f32), bb = b.pointer("b", f32), c = b.pointer("c", f32);
  Expr n = b.i32("n");
  b.grid({isa::ceil_div(n, 256)});
  auto va = b.name(b.global_view(a, {n}, {1}), "va");
  auto vb = b.name(b.global_view(bb, {n}, {1}), "vb");
  auto vc = b.name(b.global_view(c, {n}, {1}), "vc");
  // 64 threads x 4 consecutive elements: each thread's part is one 16-byte vector.
  const auto tile = vm::reg(f32, {256}, spatial({64}) * local({4}));
  Expr base = b.let("base", isa::block_idx_x() * 256);
  auto x = b.name(b.load_global(va, {base}, tile, /*masked=*/true), "x");
  auto y = b.name(b.load_global(vb, {base}, tile, /*masked=*/true), "y");
  b.store_global(b.name(b.add(x, y), "sum"), vc, {base}, /*masked=*/true);
  return b.build();
}

vm::Program tiled_matmul() {
  const DataType f16 = DataType::f16(), f32 = DataType::f32();
  vm::Builder b("tiled_matmul", /*warps=*/4);
  auto pa = b.pointer("A", f16), pb = b.pointer("B", f16), pc = b.pointer("C", f32);
  Expr M = b.i32("M"), N = b.i32("N"), K = b.i32("K");
  b.grid({isa::ceil_div(N, 16), isa::ceil_div(M, 32)});
  auto A = b.name(b.global_view(pa, {M, K}, {K, 1}), "gA");
  auto B = b.name(b.global_view(pb, {K, N}, {N, 1}), "gB");
  auto C = b.name(b.global_view(pc, {M, N}, {N, 1}), "gC");
  // Warps form a 2x2 grid over the 32x16 C tile; each warp owns one m16n8 fragment. A is replicated over
  // the warp column, B over the warp row.
  const auto a_layout = spatial({2, 1}) * replicated(2) * mma_m16n8k16_a();
  const auto b_layout = replicated(2) * spatial({1, 2}) * mma_m16n8k16_b();
  const auto c_layout = spatial({2, 2}) * mma_m16n8k16_c();
  auto sa = b.name(b.alloc_shared(f16, SharedLayout::row_major({32, 16})), "sA");
  auto sb = b.name(b.alloc_shared(f16, SharedLayout::row_major({16, 16})), "sB");
  auto acc = b.name(b.alloc_register(vm::reg(f32, {32, 16}, c_layout)), "acc");
  Expr m0 = b.let("m0", isa::block_idx_y() * 32), n0 = b.let("n0", isa::block_idx_x() * 16);
  b.for_range("k", 0, isa::ceil_div(K, 16), [&](Expr k) {
    b.copy_async(sa, {0, 0}, A, {m0, k * 16}, {32, 16}, /*masked=*/true);
    b.copy_async(sb, {0, 0}, B, {k * 16, n0}, {16, 16}, /*masked=*/true);
    b.commit_group();
    b.wait_group(0);
    b.sync_threads();
    auto fa = b.name(b.load_shared(sa, {0, 0}, vm::reg(f16, {32, 16}, a_layout)), "a");
    auto fb = b.name(b.load_shared(sb, {0, 0}, vm::reg(f16, {16, 16}, b_layout)), "b");
    b.dot(acc, fa, fb);
    b.sync_threads();  // the next iteration's copies overwrite the tiles
  });
  b.store_global(acc, C, {m0, n0}, /*masked=*/true);
  return b.build();
}

vm::Program dequant_fragment(DataType code, DataType out) {
  const int bits = code.bits();
  vm::Builder b("dequant_fragment", /*warps=*/1);
  auto q = b.pointer("q", DataType::unsigned_int(8)), o = b.pointer("out", out);
  Expr blocks = b.i32("blocks");
  b.grid({blocks});
  auto vq = b.name(b.global_view(q, {blocks * 32, bits}, {bits, 1}), "vq");
  auto vo = b.name(b.global_view(o, {blocks * 16, 16}, {16, 1}), "vo");
  // Each lane's 8 codes of `bits` bits are `bits` whole bytes: load them as bytes, reinterpret in place.
  auto bytes = b.name(b.load_global(vq, {isa::block_idx_x() * 32, 0},
                                    vm::reg(DataType::unsigned_int(8), {32, bits}, spatial({32, 1}) * local({1, bits}))),
                      "bytes");
  auto codes = b.name(b.view(bytes, vm::reg(code, {16, 16}, mma_m16n8k16_a())), "codes");
  auto values = b.name(b.cast(codes, out), "values");
  b.store_global(values, vo, {isa::block_idx_x() * 16, 0});
  return b.build();
}

std::vector<float> reference_matmul(const std::vector<float>& a, const std::vector<float>& b, int M, int N, int K) {
  std::vector<float> c(static_cast<std::size_t>(M) * N, 0.0f);
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      double acc = 0;
      for (int k = 0; k < K; ++k) acc += static_cast<double>(a[m * K + k]) * b[k * N + n];
      c[m * N + n] = static_cast<float>(acc);
    }
  return c;
}

std::vector<std::uint32_t> reference_fragment_codes(const std::vector<std::uint8_t>& packed, int code_bits, int blocks) {
  std::vector<std::uint32_t> out(static_cast<std::size_t>(blocks) * 256);
  for (int blk = 0; blk < blocks; ++blk)
    for (int lane = 0; lane < 32; ++lane)
      for (int i = 0; i < 8; ++i) {
        // PTX m16n8k16 A table: row g (+8 for a2,a3,a6,a7), col 2t + (i&1) (+8 for i >= 4).
        const int g = lane / 4, t = lane % 4;
        const int row = g + ((i == 2 || i == 3 || i == 6 || i == 7) ? 8 : 0);
        const int col = 2 * t + (i & 1) + (i >= 4 ? 8 : 0);
        const std::size_t lane_bit = (static_cast<std::size_t>(blk) * 32 + lane) * code_bits * 8;
        out[blk * 256 + row * 16 + col] = isa::read_bits(packed, lane_bit + static_cast<std::size_t>(i) * code_bits, code_bits);
      }
  return out;
}

}  // namespace anybit::programs
