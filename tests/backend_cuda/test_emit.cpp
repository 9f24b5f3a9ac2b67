// CUDA emission without NVRTC (host tier): structure of the generated source, analysis, reporting.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "backend_cuda/emit.h"
#include "backend_cuda/nvrtc.h"
#include "backend_cuda/ptx_stats.h"
#include "backend_cuda/sass.h"
#include "isa/error.h"
#include "layout/mma_layouts.h"
#include "passes/pipeline.h"
#include "passes/ldmatrix.h"
#include "passes/vectorize.h"
#include "programs/examples.h"
#include "programs/quant_matmul.h"
#include "vm/builder.h"

using namespace anybit;
using namespace anybit::layout;

namespace {

std::string read(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("the emitted kernel reads like a hand-written one and keeps provenance") {
  const auto k = backend_cuda::emit_cuda(programs::tiled_matmul());
  CHECK(k.name == "tiled_matmul");
  CHECK(k.threads == 128);
  CHECK(k.shared_bytes == 1536);
  CHECK(k.source.find("extern \"C\" __global__ void __maxnreg__(255) tiled_matmul(") != std::string::npos);
  CHECK(k.source.find("// vm: dot %acc, %a, %b") != std::string::npos);
  CHECK(k.source.find("ab::mma_m16n8k16_f32_f16(&t_acc[0], &t_a[0], &t_b[0], &t_acc[0]);") != std::string::npos);
  CHECK(k.source.find("#include \"anybit_runtime.cuh\"") != std::string::npos);
}

TEST_CASE("vector width follows contiguity and divisibility") {
  passes::Divisibility div;
  const isa::Expr n = isa::Expr::var("n");
  // 64 threads x 4 consecutive f32: 16-byte accesses once the offset is a multiple of 4.
  const auto tile = spatial({64}) * local({4});
  passes::AccessShape a{32, {isa::block_idx_x() * 256}, {1}, {}};
  CHECK(passes::vector_width(tile, a, div) == 4);
  a.offset = {isa::block_idx_x() * 256 + 2};
  CHECK(passes::vector_width(tile, a, div) == 2);
  // Masked: the extent must keep whole vectors inside or outside.
  a.offset = {0};
  a.extent = {n};
  CHECK(passes::vector_width(tile, a, div) == 1);
  div.known["n"] = 4;
  CHECK(passes::vector_width(tile, a, div) == 4);
  // Row-major 2-D view: the row stride must keep rows aligned.
  const auto rows = spatial({8, 8}) * local({1, 8});  // f16: 8 x 16 bytes per row segment
  passes::AccessShape b{16, {0, 0}, {isa::Expr::var("K"), 1}, {}};
  CHECK(passes::vector_width(rows, b, div) == 1);
  div.known["K"] = 64;
  CHECK(passes::vector_width(rows, b, div) == 8);
  // Slots that are not consecutive elements (column-major locals) never vectorize.
  CHECK(passes::vector_width(spatial({8, 8}) * column_local({2, 2}), b, div) == 1);
  // Sub-byte codes: 32 int4 slots per thread make 16 bytes.
  passes::AccessShape q{4, {0}, {1}, {}};
  CHECK(passes::vector_width(spatial({32}) * local({32}), q, div) == 16);  // 16 x 4 bits per access: 8 bytes
  // Constant strides (shared tiles): slots consecutive in memory across dimensions. (n / 8, n % 8, k) with
  // strides (4, 8, 1): a thread's two 8-column tiles of 4 values each lie side by side, 8 f16 in a row.
  const auto split = local({2, 1, 1}) * spatial({1, 8, 1}) * local({1, 1, 4});
  passes::AccessShape f{16, {0, 0, 0}, {4, 8, 1}, {}};
  CHECK(passes::vector_width(split, f, div) == 8);
  f.strides = {4, 12, 1};  // threads 12 values apart: 8-byte alignment only
  CHECK(passes::vector_width(split, f, div) == 4);
  f.strides = {6, 8, 1};  // a gap between the tiles: the second starts at 6
  CHECK(passes::vector_width(split, f, div) == 2);
  f.offset = {0, 0, isa::Expr::var("k")};  // an offset of unknown divisibility
  CHECK(passes::vector_width(split, f, div) == 1);
  // A swizzle keeps 4 elements contiguous: no wider.
  passes::AccessShape sw{16, {0, 0, 0}, {4, 8, 1}, {}, 4};
  CHECK(passes::vector_width(split, sw, div) == 4);
}

TEST_CASE("a reduction across warps goes through shared scratch memory beyond the plan") {
  const auto p = vm::parse(R"(program r(x: ptr<f32>, out: ptr<f32>) grid(1) warps(2) {
  %v = global_view x {shape=[64], strides=[1]}
  %o = global_view out {shape=[1], strides=[1]}
  %a = load_global %v[0] : f32[64] @ spatial(64)
  %s = reduce %a {dims=[0], op=add}
  store_global %s, %o[0]
}
)",
                           "r.vm");
  const auto k = backend_cuda::emit_cuda(p);
  CHECK(k.shared_bytes == 64 * 4);
  CHECK(k.source.find("ab::shfl_xor") != std::string::npos);  // within warps first
  CHECK(k.source.find("scratch[0 + group + 32]") != std::string::npos);  // then the other warp's partial
  CHECK(k.source.find("256 bytes of shared memory (256 of them reduction scratch)") != std::string::npos);
}

TEST_CASE("the pipeline dumps the program and the kernel") {
  const auto dir = std::filesystem::temp_directory_path() / "anybit-test-dump";
  std::filesystem::remove_all(dir);
  passes::PipelineOptions options;
  options.dump_dir = dir.string();
  const auto r = passes::run_pipeline(programs::vector_add(), options);
  CHECK(read((dir / "00_input.vm").string()) == vm::print(programs::vector_add()));
  CHECK(read((dir / "vector_add.cu").string()) == r.kernel.source);
  std::filesystem::remove_all(dir);
}

TEST_CASE("ptxas statistics are parsed from the log") {
  const auto s = backend_cuda::parse_ptxas_log(read("tests/backend_cuda/data/ptxas_sm80.log"));
  CHECK(s.reported);
  CHECK(s.registers == 37);
  CHECK(s.spill_store_bytes == 4);
  CHECK(s.spill_load_bytes == 12);
  CHECK(s.stack_bytes == 8);
  CHECK(s.static_shared_bytes == 384);
  const auto none = backend_cuda::parse_ptxas_log(read("tests/backend_cuda/data/ptxas_none.log"));
  CHECK_FALSE(none.reported);
  CHECK(none.registers == -1);
}

TEST_CASE("PTX opcodes are counted, guards and labels skipped") {
  const std::string ptx = R"(
.visible .entry k(
  .param .u64 k_param_0
)
{
  .reg .b32 %r<4>;
  ld.param.u64 %rd1, [k_param_0];
$L__BB0_1:
  @%p1 bra $L__BB0_2;
  @!%p2 ld.global.v4.u32 {%r1, %r2, %r3, %r4}, [%rd1];
  mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%f1,%f2,%f3,%f4}, {%r1,%r2,%r3,%r4}, {%r5,%r6}, {%f1,%f2,%f3,%f4};
  // a comment
  ret;
}
)";
  const auto counts = backend_cuda::ptx_opcode_counts(ptx);
  CHECK(counts.at("ld.param.u64") == 1);
  CHECK(counts.at("bra") == 1);
  CHECK(counts.at("ld.global.v4.u32") == 1);
  CHECK(counts.at("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32") == 1);
  CHECK(counts.at("ret") == 1);
  CHECK(counts.size() == 5);
}

TEST_CASE("SASS opcodes are counted with predicates stripped") {
  const auto counts = backend_cuda::sass_opcode_counts(read("tests/backend_cuda/data/sample.sass"));
  CHECK(counts.at("HMMA.16816.F32") == 2);
  CHECK(counts.at("LDGSTS.E.BYPASS.128.ZFILL") == 1);
  CHECK(counts.at("BRA") == 2);
  CHECK(counts.at("IMAD.MOV.U32") == 1);
  CHECK(counts.at("DEPBAR.LE") == 1);
  int total = 0;
  for (const auto& [op, n] : counts) total += n;
  CHECK(total == 11);
}

TEST_CASE("ldmatrix is planned exactly for tiles in the m8n8 register arrangement") {
  passes::Divisibility div;
  const auto smem = SharedLayout::row_major({64, 64});
  const std::vector<isa::Expr> at = {0, 0}, at3 = {0, 0, 0};
  const isa::DataType f16 = isa::DataType::f16();
  // mma A fragments: four 8x8 blocks per warp, not transposed.
  auto a = passes::plan_ldmatrix(mma_m16n8k16_a(), f16, smem, at, div);
  REQUIRE(a.has_value());
  CHECK_FALSE(a->trans);
  CHECK(a->counts == std::vector<int>{4});
  CHECK(a->origins == std::vector<std::array<std::int64_t, 2>>{{0, 0}, {8, 0}, {0, 8}, {8, 8}});
  // mma B fragments (k x n, k rows in shared): two blocks, transposed.
  auto b = passes::plan_ldmatrix(mma_m16n8k16_b(), f16, smem, at, div);
  REQUIRE(b.has_value());
  CHECK(b->trans);
  CHECK(b->counts == std::vector<int>{2});
  // Warps arranged through spatial modes keep the plan; two A fragments per warp need 8 registers.
  auto wide = passes::plan_ldmatrix(spatial({2, 2}) * local({2, 1}) * mma_m16n8k16_a(), f16, SharedLayout::row_major({64, 32}), at, div);
  REQUIRE(wide.has_value());
  CHECK(wide->counts == std::vector<int>{4, 4});
  // Not ldmatrix: 32-bit elements, thread-contiguous rows, unaligned offsets or rows, narrow swizzle.
  CHECK_FALSE(passes::plan_ldmatrix(mma_m16n8k16_c(), isa::DataType::f32(), smem, at, div));
  CHECK_FALSE(passes::plan_ldmatrix(spatial({8, 4}) * local({2, 4}), f16, smem, at, div));
  CHECK_FALSE(passes::plan_ldmatrix(mma_m16n8k16_a(), f16, smem, {0, 4}, div));
  CHECK_FALSE(passes::plan_ldmatrix(mma_m16n8k16_a(), f16, SharedLayout({64, 64}, {68, 1}), at, div));
  CHECK_FALSE(passes::plan_ldmatrix(mma_m16n8k16_a(), f16, SharedLayout::row_major({64, 64}, Swizzle{3, 2, 3}), at, div));
  CHECK(passes::plan_ldmatrix(mma_m16n8k16_a(), f16, SharedLayout::row_major({64, 64}, Swizzle{3, 3, 3}), at, div));
  // A stage of a double-buffered tile: a leading dimension of size 1, offset by a stage index.
  const auto staged = reshape(mma_m16n8k16_a(), {1, 16, 16});
  const std::vector<isa::Expr> stage = {isa::Expr::var("k") % 2, 0, 0};
  auto s3 = passes::plan_ldmatrix(staged, f16, SharedLayout::row_major({2, 16, 64}, Swizzle{3, 3, 3}), stage, div);
  REQUIRE(s3.has_value());
  CHECK(s3->counts == std::vector<int>{4});
  CHECK_FALSE(passes::plan_ldmatrix(reshape(mma_m16n8k16_a(), {2, 8, 16}), f16, SharedLayout::row_major({2, 8, 64}), at3, div));
}

TEST_CASE("index arithmetic is 32-bit where the range analysis proves it fits, 64-bit elsewhere") {
  const auto p = vm::parse(R"(program widths(x: ptr<f32>, n: i32, k: i32, big: i64) grid(1) warps(1) {
  %v = global_view x {shape=[n], strides=[1]}
  let q = n / 64
  let r = k / 64
  let nk = n * k
  let w = big + 1
  for i in range(0, q) {
    let s = i % 3
    %t = load_global %v[s + nk + w] : f32[32] @ spatial(32) {masked}
  }
}
)");
  const std::string src = backend_cuda::emit_cuda(p).source;
  CAPTURE(src);
  // n is a view dimension: non-negative (the kernel returns on a negative one), so n / 64 is unsigned.
  CHECK(src.find("if (n_ < 0) return;") != std::string::npos);
  CHECK(src.find("const int q_ = (int)((ab::u32)n_ / 64u);") != std::string::npos);
  // k may be negative: floor division in 32 bits.
  CHECK(src.find("const int r_ = ab::floordiv32(k_, 64);") != std::string::npos);
  CHECK(src.find("const ab::i64 nk_ = ((ab::i64)n_ * (ab::i64)k_);") != std::string::npos);
  CHECK(src.find("const ab::i64 big_ = arg_big;") != std::string::npos);
  CHECK(src.find("const ab::i64 w_ =") != std::string::npos);
  CHECK(src.find("for (int i_ = 0; i_ < q_; i_ += 1) {") != std::string::npos);
  CHECK(src.find("const int s_ = (int)((ab::u32)i_ % 3u);") != std::string::npos);
}

TEST_CASE("swizzled shared offsets: a pipeline stage's term adds after the swizzle, in 32 bits") {
  programs::Schedule s;
  s.stages = 3;
  const auto k = passes::run_pipeline(programs::quant_matmul(programs::QuantFormat{}, s)).kernel;
  CAPTURE(k.source);
  // Rows of 128 f16 (16 chunks of 16 bytes): the XOR takes the row's low three bits (shift 4). The stage
  // stride (2048 f16 = 16 rows of 128) is a multiple of the swizzle's 1024-element period. Each part is
  // scaled to bytes on its own, so the thread's part stays loop-invariant and the stage's adds to it.
  CHECK(k.source.find("t_sA + (ab::swizzle<3, 3, 4>((int)(w0 + row + lane % 8) * 128 + (int)(w1 + col) * 1)) * 16 / 8 + "
                      "((int)(stage_) * 2048) * 16 / 8") != std::string::npos);
}

TEST_CASE("parameter bounds: 32-bit addressing where every offset provably fits, checked at launch") {
  const programs::QuantFormat f{};
  passes::PipelineOptions o;
  o.emit.divisibility = programs::quant_matmul_divisibility(f, {});
  const auto wide = passes::run_pipeline(programs::quant_matmul(f), o).kernel;
  // Without bounds M * K and the packed weights' byte count may exceed 2^31: 64-bit views.
  CHECK(wide.source.find("const ab::i64 t_gWbytes_extent1") != std::string::npos);
  CHECK(wide.bounds.empty());
  o.emit.bounds = programs::quant_matmul_bounds(16, 4096, 4096);
  CHECK(o.emit.bounds == std::map<std::string, std::int64_t>{{"M", 1 << 14}, {"N", 4096}, {"K", 4096}});
  const auto narrow = passes::run_pipeline(programs::quant_matmul(f), o).kernel;
  CAPTURE(narrow.source);
  // 4096 x 4096 int4 weights are 8 MiB; A under M <= 2^14 is 128 MiB: both fit 32-bit offsets.
  CHECK(narrow.source.find("const int t_gWbytes_extent1") != std::string::npos);
  CHECK(narrow.source.find("const int t_gA_stride1") != std::string::npos);
  CHECK(narrow.source.find("// index arithmetic assumes K <= 4096, M <= 16384, N <= 4096") != std::string::npos);
  CHECK(narrow.bounds == o.emit.bounds);
  CHECK_NOTHROW(backend_cuda::check_param_assumptions(narrow, {{"M", 16384}, {"N", 4096}, {"K", 4096}}));
  CHECK_THROWS_WITH(backend_cuda::check_param_assumptions(narrow, {{"M", 1}, {"N", 4096}, {"K", 8192}}),
                    doctest::Contains("parameter K = 8192 exceeds the bound 4096 it was compiled for"));
  // Bounds that cannot make a view fit leave it 64-bit: N x K = 2^31 int4 weights are 1 GiB, but A's
  // M x K f16 under M <= 2^14, K <= 2^17 reach 4 GiB.
  o.emit.bounds = programs::quant_matmul_bounds(1, 1 << 14, 1 << 17);
  const auto big = passes::run_pipeline(programs::quant_matmul(f), o).kernel;
  CHECK(big.source.find("const ab::i64 t_gA_stride1") != std::string::npos);
  CHECK(big.source.find("const int t_gWbytes_extent1") != std::string::npos);
}

TEST_CASE("masked accesses test only the bounds the range analysis cannot prove") {
  // A group's scale row (g = kc >= 0) and the column n0 + lane part (>= 0) are never negative, and the
  // broadcast middle dimension's coordinate is always inside its constant extent: only the upper bounds
  // of the group and the column are tested.
  programs::Schedule s;
  s.stages = 4;
  s.weights_on_a = true;
  const auto k = passes::run_pipeline(programs::quant_matmul(programs::QuantFormat{}, s)).kernel;
  CAPTURE(k.source);
  CHECK(k.source.find("if (i0 < t_gS_extent0 && i2 < t_gS_extent2) ab::ld_global<2>(") != std::string::npos);
  CHECK(k.source.find("i1 >= 0") == std::string::npos);
  CHECK(k.source.find("i1 < t_gS_extent1") == std::string::npos);
  // An offset that can be negative keeps its lower test.
  vm::Builder b("shifted_copy", 1);
  auto x = b.pointer("x", isa::DataType::f32());
  auto y = b.pointer("y", isa::DataType::f32());
  isa::Expr n = b.i32("n");
  b.grid({isa::ceil_div(n, 32)});
  const isa::Expr at = b.let("at", isa::block_idx_x() * 32 - 1);
  const auto tile = vm::reg(isa::DataType::f32(), {32}, spatial({32}));
  auto v = b.load_global(b.global_view(x, {n}, {1}), {at}, tile, true);
  b.store_global(v, b.global_view(y, {n}, {1}), {at}, true);
  const auto shifted = passes::run_pipeline(b.build()).kernel;
  CAPTURE(shifted.source);
  CHECK(shifted.source.find("i0 >= 0 && i0 < t_") != std::string::npos);
}

TEST_CASE("decode constants sit in opaque registers, and a chunk's scale loads come before the barrier") {
  programs::Schedule s;
  s.stages = 4;
  s.weights_on_a = true;
  s.unroll = 2;
  const programs::QuantFormat int2{isa::DataType::signed_int(2), isa::DataType::f16(), 128, programs::ZeroMode::None};
  const auto k = passes::run_pipeline(programs::quant_matmul(int2, s)).kernel;
  CAPTURE(k.source);
  // Declared once at the top from a value ptxas cannot see through, used as lop3 operands (as immediates
  // ptxas re-materialized them at every use, in every iteration). The code at bits 2-3 of each half sits
  // under the magic 256 (0x5c00, whose unit is bit 2) with its sign bit (bit 3) flipped, negated in the high
  // half on the complemented code (0xdc04).
  const auto zero = k.source.find("const ab::u32 kc_zero = ab::opaque_zero();");
  REQUIRE(zero != std::string::npos);
  CHECK(zero < k.source.find("for (int i_ = 0;"));
  CHECK(k.source.find("const ab::u32 kc_dc045c08 = 0xdc045c08u ^ kc_zero;") != std::string::npos);
  CHECK(k.source.find("ab::lop3<0x6a>(t_codes0[0], 0x000c000cu, kc_dc045c08)") != std::string::npos);
  // Both chunks' group scales load at the top of the iteration, before the wait and the barrier, so their
  // latency overlaps the copy issue, the decode and the mma.
  const auto loop = k.source.find("for (int i_ = 0;");
  const auto wait = k.source.find("ab::cp_async_wait<2>();", loop);
  REQUIRE(wait != std::string::npos);
  const auto first = k.source.find("vm: %v", loop), scale0 = k.source.find("vm: %scale0 = cast", loop),
             scale1 = k.source.find("vm: %scale1 = cast", loop);
  CHECK(first < wait);
  CHECK(scale0 < wait);
  CHECK(scale1 < wait);
  CHECK(k.source.find("const ab::u8* const p = t_gS", loop) < wait);
  CHECK(k.source.find("ab::ld_global<2>(&v, p + (8) * 2)", loop) < wait);
}

TEST_CASE("offset decode: integer codes keep their magic number, a second mma on constants removes it") {
  programs::Schedule s;
  s.stages = 4;
  s.weights_on_a = true;
  const programs::QuantFormat int2{isa::DataType::signed_int(2), isa::DataType::f16(), 128, programs::ZeroMode::None};
  const auto k = passes::run_pipeline(programs::quant_matmul(int2, s)).kernel;
  CAPTURE(k.source);
  // The code at bits 0-1 of each half: magic 1024 (unit 1 at bit 0) with the sign bit 1 flipped in the low
  // half (x + 1026), and -(1024 + 3 - (x + 2)) = x - 1025 from the complemented code in the high half; no
  // packed fma follows, and the fragment constants hold the negated offsets: -1026 (0xe402), 1025 (0x6401).
  CHECK(k.source.find("t_w[0] = ab::lop3<0x6a>(t_codes[0], 0x00030003u, kc_e4016402);") != std::string::npos);
  CHECK(k.source.find("hfma2") == std::string::npos);
  CHECK(k.source.find("0x6401e402u ^ (kc_zero << 0)") != std::string::npos);
  // Each weight mma is followed by one on a constant fragment into the accumulator's shadow, which is
  // added in before the group's scale reads the accumulator.
  const auto mma = k.source.find("ab::mma_m16n8k16_f32_f16(&t_part[0], frag0, &t_v");
  const auto correction = k.source.find("ab::mma_m16n8k16_f32_f16(&t_part_o[0], kf", mma);
  REQUIRE(mma != std::string::npos);
  REQUIRE(correction != std::string::npos);
  CHECK(k.source.find("ab::mma_m16n8k16_f32_f16(&t_part", mma + 1) == correction);
  CHECK(k.source.find("ab::u32 t_part_o[4] = {};") != std::string::npos);
  const auto flush = k.source.find("t_part[w] = ab::as_u32(ab::as_float(t_part[w]) + ab::as_float(t_part_o[w])); t_part_o[w] = 0u;");
  const auto scale = k.source.find(" = fma %part, %scale, %acc");
  REQUIRE(flush != std::string::npos);
  REQUIRE(scale != std::string::npos);
  CHECK(correction < scale);
  CHECK(scale < flush);
  CHECK(flush < k.source.find("ab::ffma(ab::as_float(ab::get<32>(t_part, s))", scale));
}

TEST_CASE("offset decode only where the decoded values feed nothing but the dot") {
  programs::Schedule s;
  s.stages = 4;
  s.weights_on_a = true;
  // Integer zero points are subtracted from the decoded weights: exact decode, packed fma kept.
  const programs::QuantFormat zeros{isa::DataType::unsigned_int(2), isa::DataType::f16(), 128, programs::ZeroMode::Integer};
  const auto z = passes::run_pipeline(programs::quant_matmul(zeros, s)).kernel;
  CHECK(z.source.find("hfma2") != std::string::npos);
  CHECK(z.source.find("t_part_o") == std::string::npos);
}
