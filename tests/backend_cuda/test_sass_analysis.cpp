// SASS analysis (blocks, loops, the steady-state main loop), occupancy and the bench model's arithmetic,
// on a hand-written snippet with a known control-flow graph and on a kernel SASS sample produced by anybit
// (tests/backend_cuda/data, nvdisasm -c of quant_matmul int4 g64, schedule w1 m1 s0 k1, sm_80).
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include "backend_cuda/sass_analysis.h"
#include "isa/error.h"
#include "programs/bench.h"

using namespace anybit;
using namespace anybit::backend_cuda;

namespace {

const char* kSnippet = R"(
        .text.k:
        /*0000*/                   MOV R1, c[0x0][0x28] ;
.L_x_0:
        /*0010*/                   IADD3 R2, R2, 0x1, RZ ;
        /*0020*/               @P0 BRA `(.L_x_1) ;
        /*0030*/                   HMMA.16816.F32 R4, R8, R12, R4 ;
.L_x_1:
        /*0040*/                   ISETP.NE.AND P1, PT, R2, 0x10, PT ;
        /*0050*/              @!PT LDS RZ, [RZ] ;
        /*0060*/               @P1 BRA `(.L_x_0) ;
        /*0070*/                   EXIT ;
.L_x_2:
        /*0080*/                   BRA `(.L_x_2);
)";

std::string sample() {
  std::ifstream f("tests/backend_cuda/data/quant_matmul_int4_g64_direct.sass");
  REQUIRE(f);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("basic blocks and successors of a snippet") {
  const auto p = parse_sass(kSnippet);
  REQUIRE(p.instructions.size() == 9);
  CHECK(p.instructions[2].predicate == "@P0");
  CHECK(p.instructions[2].target == ".L_x_1");
  CHECK(p.instructions[5].never());
  CHECK(p.instructions[3].opcode == "HMMA.16816.F32");
  REQUIRE(p.blocks.size() == 6);
  const std::vector<std::pair<std::size_t, std::size_t>> ranges = {{0, 0}, {1, 2}, {3, 3}, {4, 6}, {7, 7}, {8, 8}};
  const std::vector<std::vector<std::size_t>> successors = {{1}, {3, 2}, {3}, {1, 4}, {}, {5}};
  for (std::size_t b = 0; b < 6; ++b) {
    CAPTURE(b);
    CHECK(p.blocks[b].first == ranges[b].first);
    CHECK(p.blocks[b].last == ranges[b].second);
    CHECK(p.blocks[b].successors == successors[b]);
  }
  CHECK_THROWS_AS(parse_sass("no instructions here"), Error);
}

TEST_CASE("loops: innermost first, blocks every iteration runs vs blocks some iterations take") {
  const auto p = parse_sass(kSnippet);
  const auto loops = find_loops(p);
  REQUIRE(loops.size() == 2);
  CHECK(loops[0].blocks == std::vector<std::size_t>{5});  // the trap loop
  CHECK(loops[1].header == 1);
  CHECK(loops[1].blocks == std::vector<std::size_t>{1, 2, 3});
  CHECK(loops[1].every == std::vector<std::size_t>{1, 3});
  CHECK(loops[1].sometimes == std::vector<std::size_t>{2});
  const auto main = main_loop(p);
  REQUIRE(main);
  CHECK(main->loop.header == 1);
  // IADD3, two BRA, ISETP; the @!PT padding is never issued; the HMMA only runs when P0 is false.
  CHECK(total(main->every) == 4);
  CHECK(main->every.at("BRA") == 2);
  CHECK(count_prefix(main->sometimes, "HMMA") == 1);
  CHECK(total(main->sometimes) == 1);
}

TEST_CASE("the main loop of a quantized matmul kernel sample") {
  const auto p = parse_sass(sample());
  CHECK(p.instructions.size() == 432);  // instruction lines of the file
  const auto main = main_loop(p);
  REQUIRE(main);
  // Lines 130-357 of the file: one block from .L_x_2 to the back branch, eight HMMA (two n8 fragments x
  // four K steps of the 64-wide chunk), run by every iteration.
  CHECK(total(main->every) == 228);
  CHECK(main->sometimes.empty());
  CHECK(count_prefix(main->every, "HMMA") == 8);
  CHECK(p.instructions[p.blocks[main->loop.header].first].address == 0x0700);
  CHECK(p.instructions[p.blocks[main->loop.blocks.back()].last].address == 0x1530);
}

TEST_CASE("occupancy from registers, shared memory and threads") {
  // 128 threads x 64 registers: 2048 registers a warp, 8192 a block -> 8 blocks of 65536.
  auto o = occupancy(a100_limits(), 128, 64, 12 * 1024);
  CHECK(o.blocks == 8);
  CHECK(o.warps == 32);
  CHECK(o.limiter == "registers");
  // 40 KiB of shared memory (+1 KiB reserved) a block: 164 KiB / 41 KiB = 4 on A100, 228 / 41 = 5 on H100.
  CHECK(occupancy(a100_limits(), 128, 32, 40 * 1024).blocks == 4);
  CHECK(occupancy(h100_limits(), 128, 32, 40 * 1024).blocks == 5);
  CHECK(occupancy(h100_limits(), 128, 32, 40 * 1024).limiter == "shared memory");
  // 1024 threads: two blocks by threads; 33 registers round up to 40 per thread (256 per warp granularity).
  CHECK(occupancy(a100_limits(), 1024, 16, 0).blocks == 2);
  CHECK(occupancy(a100_limits(), 1024, 16, 0).limiter == "threads");
  CHECK(occupancy(a100_limits(), 256, 33, 0).blocks == 6);  // 40 x 32 x 8 = 10240 a block
}

TEST_CASE("the bench model: minimum bytes and the roofline arithmetic") {
  const programs::QuantFormat f{isa::DataType::signed_int(4), isa::DataType::f16(), 128, programs::ZeroMode::None};
  // 4096 x 4096 int4 (8 MiB) + 32 x 4096 f16 scales + A (4096 f16) + C (4096 f16).
  CHECK(bench::minimum_bytes(f, 1, 4096, 4096, {}) == 8388608.0 + 262144 + 8192 + 8192);
  // Split-K adds its partials, written and read: 2 x 4 slices x 4096 floats.
  CHECK(bench::minimum_bytes(f, 1, 4096, 4096, {4, 1, 3, 4}) == 8388608.0 + 262144 + 8192 + 8192 + 2.0 * 4 * 4096 * 4);
  const bench::GpuSpec gpu{"test", 1e12, 1e14, 100, 1e9, ""};
  const auto m = bench::model(gpu, {2e6, 4e6, 3e6}, 5e8, 8e5);  // minimum, requested, DRAM
  CHECK(m.memory_s == doctest::Approx(3e-6));
  CHECK(m.mma_s == doctest::Approx(5e-6));
  CHECK(m.issue_s == doctest::Approx(8e5 / (100 * 4 * 1e9)));
  bench::GpuSpec half = gpu;
  half.issue_efficiency = 0.5;  // half the cycles issue: twice the issue time
  CHECK(bench::model(half, {2e6, 4e6, 3e6}, 5e8, 8e5).issue_s == doctest::Approx(2 * 8e5 / (100 * 4 * 1e9)));
  CHECK(m.time_s == doctest::Approx(5e-6));  // mma-bound here
  CHECK(m.roofline_s == doctest::Approx(2e-6));
}

TEST_CASE("the bench report's measured table: GB/s of the minimum bytes, speedup over cuBLAS, measured over modeled") {
  bench::Report r;
  bench::Row row;
  row.format = "int4 f16 g128", row.M = 1, row.N = 8192, row.K = 8192, row.arch = "sm_90";
  row.occupancy = {{"A100", {8, 32}}, {"H100", {8, 32}}};
  row.traffic = {33.5e6, 60e6, 34e6};
  for (const auto& g : bench::gpu_specs()) row.models[g.name] = bench::Model{};
  row.models["H200"].time_s = 8e-6;
  row.measured_ms = 0.02, row.measured_min_ms = 0.019, row.measured_max_ms = 0.021, row.cublas_ms = 0.035;
  row.timing = "graph", row.device = "NVIDIA H200";
  r.rows.push_back(row);
  const std::string md = bench::markdown(r);
  // 33.5 MB in 20 us: 1675 GB/s; cuBLAS 35 us: 1.75x; 20 us against the H200 model's 8 us: 2.50.
  CHECK(md.find("| int4 f16 g128 | 1 | 8192 | 8192 | NVIDIA H200 | 20.00 | 19.00–21.00 | graph | 1675 | 35.00 | 1.75 | 8.00 | 2.50 |") !=
        std::string::npos);
  const std::string js = bench::json(r);
  CHECK(js.find("\"measured_ms\": 0.02, \"measured_min_ms\": 0.019, \"measured_max_ms\": 0.021, \"timing\": \"graph\", "
                "\"device\": \"NVIDIA H200\", \"cublas_fp16_ms\": 0.035") != std::string::npos);
  // Without a GPU there is no measured table.
  r.rows[0].measured_ms = -1;
  CHECK(bench::markdown(r).find("## Measured on the GPU") == std::string::npos);
}

TEST_CASE("an average main-loop iteration weights the refill by one and a group's end by 1 / chunks per group") {
  const auto p = parse_sass(R"(
.L_x_0:
        /*0000*/                   IADD3 R2, R2, 0x1, RZ ;
        /*0010*/               @P0 BRA `(.L_x_1) ;
        /*0020*/                   LDGSTS.E.BYPASS.128 [R3], [R4.64] ;
        /*0030*/                   IADD3 R5, R5, 0x10, RZ ;
.L_x_1:
        /*0040*/                   HMMA.16816.F32 R4, R8, R12, R4 ;
        /*0050*/               @P1 BRA `(.L_x_2) ;
        /*0060*/                   LDG.E R6, [R4.64] ;
        /*0070*/                   FFMA R7, R6, R8, R7 ;
.L_x_2:
        /*0080*/                   ISETP.NE.AND P2, PT, R2, 0x10, PT ;
        /*0090*/               @P2 BRA `(.L_x_0) ;
        /*00a0*/                   EXIT ;
)");
  const auto main = main_loop(p);
  REQUIRE(main);
  CHECK(total(main->every) == 6);      // IADD3, BRA, HMMA, BRA, ISETP, BRA
  CHECK(total(main->sometimes) == 4);  // the refill (LDGSTS, IADD3) and the group's end (LDG, FFMA)
  CHECK(bench::average_iteration(p, *main, 2) == doctest::Approx(6 + 2 + 2 / 2.0));
  CHECK(bench::average_iteration(p, *main, 4) == doctest::Approx(6 + 2 + 2 / 4.0));
}
