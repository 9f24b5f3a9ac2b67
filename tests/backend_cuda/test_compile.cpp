// NVRTC compilation (compile tier): every instruction for every architecture, instruction selection
// visible in the PTX, zero spills, failure reports.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "backend_cuda/nvrtc.h"
#include "backend_cuda/ptx_stats.h"
#include "backend_cuda/sass.h"
#include "isa/error.h"
#include "passes/pipeline.h"
#include "programs/bench.h"
#include "programs/examples.h"

using namespace anybit;

namespace {

vm::Program kitchen_sink() {
  std::ifstream f("tests/vm/programs/kitchen_sink.vm");
  std::stringstream s;
  s << f.rdbuf();
  return vm::parse(s.str(), "kitchen_sink.vm");
}

backend_cuda::EmittedKernel lowered(const vm::Program& p, std::map<std::string, std::int64_t> divisibility = {}) {
  passes::PipelineOptions o;
  o.emit.divisibility = std::move(divisibility);
  return passes::run_pipeline(p, o).kernel;
}

int count_prefix(const std::map<std::string, int>& counts, const std::string& prefix) {
  int n = 0;
  for (const auto& [op, c] : counts)
    if (op.starts_with(prefix)) n += c;
  return n;
}

const char* kArchs[] = {"sm_80", "sm_86", "sm_89", "sm_90", "sm_90a", "sm_100", "sm_120"};

}  // namespace

TEST_CASE("every instruction of the table lowers and compiles for every architecture") {
  const auto kernel = lowered(kitchen_sink());
  const auto supported = backend_cuda::supported_archs();
  for (const char* arch : kArchs) {
    CAPTURE(arch);
    const std::string base = std::string(arch).substr(0, 6);
    if (std::find(supported.begin(), supported.end(), base) == supported.end()) {
      MESSAGE("skipping " << arch << ": NVRTC " << backend_cuda::nvrtc_version() << " does not support it");
      continue;
    }
    const auto c = backend_cuda::compile(kernel, {arch});
    CHECK_FALSE(c.ptx.empty());
    CHECK_FALSE(c.cubin.empty());
    CHECK(c.stats.reported);
    CHECK(c.stats.spill_store_bytes == 0);
  }
  const auto ptx_only = backend_cuda::compile(kernel, {"compute_80"});
  CHECK(ptx_only.cubin.empty());
  CHECK(ptx_only.ptx.find(".target sm_80") != std::string::npos);
}

TEST_CASE("the example programs compile with zero spills on sm_80 and sm_90") {
  for (const auto& p : {programs::vector_add(), programs::tiled_matmul(),
                        programs::dequant_fragment(isa::DataType::signed_int(3), isa::DataType::f16())}) {
    for (const char* arch : {"sm_80", "sm_90"}) {
      CAPTURE(p.name);
      CAPTURE(arch);
      const auto c = backend_cuda::compile(lowered(p), {arch});
      CHECK(c.stats.registers > 0);
      CHECK(c.stats.spill_store_bytes == 0);
      CHECK(c.stats.spill_load_bytes == 0);
      CHECK(c.stats.stack_bytes == 0);
    }
  }
}

TEST_CASE("instruction selection is visible in the PTX") {
  // Contiguous, 16-byte aligned f32 tiles: vector loads and stores.
  auto counts = backend_cuda::ptx_opcode_counts(backend_cuda::compile(lowered(programs::vector_add(), {{"n", 4}}), {"sm_80"}).ptx);
  CHECK(counts["ld.global.v4.u32"] == 2);
  CHECK(counts["st.global.v4.u32"] == 1);
  // Without the divisibility of n the masked tail forces element accesses.
  counts = backend_cuda::ptx_opcode_counts(backend_cuda::compile(lowered(programs::vector_add()), {"sm_80"}).ptx);
  CHECK(counts["ld.global.v4.u32"] == 0);
  CHECK(count_prefix(counts, "ld.global.u32") == 8);
  // copy_async with aligned rows: 16-byte cp.async; dot: mma.sync m16n8k16.
  const auto mm = backend_cuda::compile(lowered(programs::tiled_matmul(), {{"K", 16}, {"N", 16}}), {"sm_80"});
  counts = backend_cuda::ptx_opcode_counts(mm.ptx);
  CHECK(counts["cp.async.cg.shared.global"] > 0);
  CHECK(mm.ptx.find("cp.async.cg.shared.global [%r") != std::string::npos);
  CHECK(counts["mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32"] > 0);
  CHECK(counts["cp.async.commit_group"] > 0);
  // Fragments read from shared memory in the m8n8 arrangement: ldmatrix (x4 for A, x2.trans for B).
  CHECK(counts["ldmatrix.sync.aligned.m8n8.x4.shared.b16"] > 0);
  CHECK(counts["ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16"] > 0);
  CHECK(count_prefix(counts, "ld.shared") == 0);
  CHECK(mm.stats.stack_bytes == 0);
  // 24 bits of int3 codes per lane: loaded as bytes, then viewed without moving bits.
  const auto dq = backend_cuda::compile(lowered(programs::dequant_fragment(isa::DataType::signed_int(3), isa::DataType::f16())), {"sm_80"});
  CHECK(backend_cuda::ptx_opcode_counts(dq.ptx)["ld.global.u8"] == 3);
}

TEST_CASE("a failing compile reports numbered source, options, log and a reproducer") {
  backend_cuda::EmittedKernel broken{"broken", "#include \"anybit_runtime.cuh\"\nextern \"C\" __global__ void broken() { int x = ; }\n", 32, 0, {}, {}, {}, {}};
  try {
    backend_cuda::compile(broken, {"sm_80"});
    FAIL("expected an error");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("NVRTC could not compile kernel 'broken' for sm_80") != std::string::npos);
    CHECK(msg.find("    2 | extern \"C\" __global__ void broken() { int x = ; }") != std::string::npos);
    CHECK(msg.find("--gpu-architecture=sm_80") != std::string::npos);
    CHECK(msg.find("expected an expression") != std::string::npos);
    const auto at = msg.find("reproducer: ");
    REQUIRE(at != std::string::npos);
    const std::string dir = msg.substr(at + 12);
    CHECK(std::filesystem::exists(std::filesystem::path(dir) / "broken.cu"));
    CHECK(std::filesystem::exists(std::filesystem::path(dir) / "anybit_runtime.cuh"));
    std::filesystem::remove_all(dir);
  }
  CHECK_THROWS_WITH_AS(backend_cuda::compile(broken, {"sm80"}), doctest::Contains("unknown architecture 'sm80'"), Error);
}

TEST_CASE("low-bit casts to f16 and bf16 are vectorized: no per-element conversions in the PTX") {
  for (isa::DataType code : isa::all_dtypes()) {
    if (code.bits() > 8 || code.is_bool()) continue;
    for (isa::DataType out : {isa::DataType::f16(), isa::DataType::bf16()}) {
      CAPTURE(code.name());
      CAPTURE(out.name());
      const auto kernel = lowered(programs::dequant_fragment(code, out));
      const bool exotic = out == isa::DataType::f16() && code.is_float() && code.exponent_bits() > 5;
      CHECK(kernel.fallbacks.empty() != exotic);  // only f7e6m0, f8e6m1, f8e7m0 -> f16 stay per element
      if (exotic) continue;
      const auto counts = backend_cuda::ptx_opcode_counts(backend_cuda::compile(kernel, {"sm_80"}).ptx);
      CHECK(count_prefix(counts, "cvt.rn.f16.f32") == 0);
      CHECK(count_prefix(counts, "cvt.rn.f32.s32") == 0);
      CHECK(count_prefix(counts, "cvt.rn.f32.u32") == 0);
      CHECK(count_prefix(counts, "cvt.rn.bf16.f32") == 0);
      CHECK(count_prefix(counts, "bra") == 0);
    }
  }
}

TEST_CASE("SASS of the tiled matmul: 16-byte LDGSTS and HMMA, when a disassembler is installed") {
  const auto nvdisasm = backend_cuda::find_disassembler();
  if (!nvdisasm) {
    MESSAGE("skipped: no nvdisasm found (tools/setup.sh installs one from the nvidia-cuda-nvdisasm wheel)");
    return;
  }
  const auto c = backend_cuda::compile(lowered(programs::tiled_matmul(), {{"K", 16}, {"N", 16}}), {"sm_80"});
  const auto counts = backend_cuda::sass_opcode_counts(backend_cuda::disassemble(c.cubin, *nvdisasm));
  CHECK(count_prefix(counts, "LDGSTS.E.BYPASS.128") > 0);
  CHECK(count_prefix(counts, "HMMA.16816.F32") > 0);
  CHECK(count_prefix(counts, "LDSM.16.M88.4") > 0);
  CHECK(count_prefix(counts, "LDSM.16.MT88.2") > 0);
  CHECK(count_prefix(counts, "STL") == 0);
  CHECK(count_prefix(counts, "LDL") == 0);
}

TEST_CASE("shared memory beyond the architecture's limit is refused before compiling") {
  CHECK(backend_cuda::shared_memory_limit("sm_80") == 166912);
  CHECK(backend_cuda::shared_memory_limit("sm_86") == 101376);
  CHECK(backend_cuda::shared_memory_limit("sm_90a") == 232448);
  auto k = lowered(programs::tiled_matmul());
  k.shared_bytes = 120 * 1024;
  CHECK_NOTHROW(backend_cuda::compile(k, {"sm_80"}));
  CHECK_THROWS_WITH_AS(backend_cuda::compile(k, {"sm_86"}),
                       doctest::Contains("needs 122880 bytes of shared memory; sm_86 allows 101376 per block"), Error);
}

TEST_CASE("reductions inside and across warps compile for integers and floats") {
  for (const char* t : {"f32", "f16", "int8", "uint32"}) {
    CAPTURE(t);
    std::string text = R"(program r(x: ptr<T>, out: ptr<T>) grid(1) warps(4) {
  %v = global_view x {shape=[8, 64], strides=[64, 1]}
  %o = global_view out {shape=[1, 64], strides=[64, 1]}
  %a = load_global %v[0, 0] : T[8,64] @ spatial(4,1) * local(2,1) * spatial(1,32) * local(1,2)
  %s = reduce %a {dims=[0], op=max}
  %t = reduce %a {dims=[0, 1], op=add}
  store_global %s, %o[0, 0]
}
)";
    for (std::size_t at; (at = text.find("T[")) != std::string::npos || (at = text.find("<T>")) != std::string::npos;)
      text.replace(text[at] == '<' ? at + 1 : at, 1, t);
    const auto k = lowered(vm::parse(text));
    const auto c = backend_cuda::compile(k, {"sm_80"});
    CHECK(c.stats.spill_store_bytes == 0);
    CHECK(backend_cuda::ptx_opcode_counts(c.ptx)["bar.sync"] == 6);
  }
}

#include "programs/quant_matmul.h"

TEST_CASE("quantized matmul kernels of every format compile for sm_80 and sm_90 with zero spills") {
  // The 16-row schedule, the small-M one (weights on the A side, split-K) and the large-M one (32-row
  // tiles, 4 stages) for each format.
  for (isa::DataType t : isa::all_dtypes()) {
    if (t.bits() > 8 || t.is_bool()) continue;
    for (const char* arch : {"sm_80", "sm_90"})
      for (const programs::Schedule& s :
           {programs::Schedule{}, programs::Schedule{4, 1, 3, 4, true}, programs::Schedule{4, 2, 4, 1}}) {
        CAPTURE(t.name());
        CAPTURE(std::string(arch));
        CAPTURE(programs::describe(s));
        const programs::QuantFormat f{t, isa::DataType::f16(), 128, programs::ZeroMode::None};
        const auto c = backend_cuda::compile(lowered(programs::quant_matmul(f, s), {{"K", 128}, {"N", 64}}), {arch});
        CHECK(c.stats.spill_store_bytes == 0);
        CHECK(c.stats.spill_load_bytes == 0);
        CHECK(c.stats.stack_bytes == 0);
        // Formats beyond f16 multiply the split activations (bf16) by weights decoded to bf16.
        const char* mma = programs::splits_activations(f, s) ? "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32"
                                                             : "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32";
        CHECK(backend_cuda::ptx_opcode_counts(c.ptx)[mma] > 0);
      }
  }
}

TEST_CASE("the schedules choose_schedule picks, and the split-K reduction, compile with zero spills") {
  for (const char* arch : {"sm_80", "sm_90"})
    for (const char* w : {"int4", "uint3", "int8", "f6e3m2", "f8e6m1"})
      for (const auto& [M, N, K] : {std::tuple{1, 4096, 4096}, {32, 4096, 4096}, {256, 8192, 8192}, {16, 64, 4096}}) {
        const programs::QuantFormat f{isa::parse_dtype(w), isa::DataType::f16(), 128,
                                      w[0] == 'u' ? programs::ZeroMode::Integer : programs::ZeroMode::None, true};
        const auto s = programs::choose_schedule(f, M, N, K);
        CAPTURE(std::string(arch));
        CAPTURE(std::string(w));
        CAPTURE(programs::describe(s));
        const auto c = backend_cuda::compile(lowered(programs::quant_matmul(f, s), {{"K", 128}, {"N", 64}}), {arch});
        CHECK(c.stats.spill_store_bytes == 0);
        CHECK(c.stats.spill_load_bytes == 0);
        CHECK(c.stats.stack_bytes == 0);
        if (s.split_k > 1) {
          const auto r = backend_cuda::compile(lowered(programs::splitk_reduce(f, s.split_k), {{"N", 16}}), {arch});
          CHECK(r.stats.spill_store_bytes == 0);
        }
        if (programs::splits_activations(f, s)) {  // its 16-byte loads and stores as well
          const auto r = backend_cuda::compile(lowered(programs::split_activations(f), {{"K", 16}}), {arch});
          CHECK(r.stats.spill_store_bytes == 0);
          const auto ptx = backend_cuda::ptx_opcode_counts(r.ptx);
          CAPTURE(r.ptx);
          CHECK(count_prefix(ptx, "ld.global.nc.v4") + count_prefix(ptx, "ld.global.v4") == 1);  // 8 activations
          CHECK(count_prefix(ptx, "st.global.v4") == 2);  // their 8 A_hi and 8 A_lo
        }
      }
}

TEST_CASE("bench traffic: the simulated block requests exactly its tiles' sectors, as the kernel that runs") {
  bench::Options o;
  o.formats = {programs::QuantFormat{isa::DataType::signed_int(4), isa::DataType::f16(), 128, programs::ZeroMode::None}};
  o.Ms = {16};
  o.NKs = {{64, 256}};
  const auto report = bench::run(o);
  REQUIRE(report.rows.size() == 1);
  const auto& row = report.rows[0];
  REQUIRE(programs::describe(row.schedule) == "w2 m1 s4 k1 whole");  // two blocks of 32 columns
  // Per block: A (16 x 256 f16) and its 32 x 256 int4 weights in whole sectors; scales: per warp and group,
  // two requests (columns c and c + 8 of each lane's pair) of 16 bytes, one sector each; C: per warp four
  // requests of 8 rows x 16 bytes, a sector per row. The kernel must be compiled with the launch's
  // divisibility facts: without them C was stored 2 bytes at a time and the count was 15% higher.
  const double block = 16 * 256 * 2 + 32 * 256 / 2 + 2 * 2 * 2 * 32 + 2 * 4 * 8 * 32;
  CHECK(row.traffic.kernel == doctest::Approx(2 * block));
  // A is counted once in DRAM: the second block's copy of it hits L2.
  CHECK(row.traffic.dram == doctest::Approx(2 * block - 16 * 256 * 2));
  // Split activations (f8e6m1): the blocks read A_hi and A_lo (bf16) in place of A, and split_activations
  // reads A once and writes both.
  o.formats = {programs::QuantFormat{isa::parse_dtype("f8e6m1"), isa::DataType::f16(), 128, programs::ZeroMode::None}};
  const auto split = bench::run(o);
  REQUIRE(split.rows.size() == 1);
  const auto& r = split.rows[0];
  CAPTURE(programs::describe(r.schedule));
  REQUIRE(programs::splits_activations(o.formats[0], r.schedule));
  REQUIRE(r.schedule.warps == 2);
  REQUIRE(r.schedule.split_k == 1);
  const double split_block = 2 * 16 * 256 * 2 + 32 * 256 + 2 * 2 * 2 * 32 + 2 * 4 * 8 * 32;
  CHECK(r.traffic.kernel == doctest::Approx(2 * split_block + 16 * 256 * (2 + 4)));
  CHECK(r.traffic.dram == doctest::Approx(2 * split_block + 16 * 256 * (2 + 4) - 2 * 16 * 256 * 2));
}
