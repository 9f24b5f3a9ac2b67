// Quantized matmul kernels compiled to CUDA: on the simulator against the double reference (sim), and
// through NVRTC with zero spills (compile).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <random>

#include "backend_cuda/nvrtc.h"
#include "backend_cuda/simulator.h"
#include "isa/error.h"
#include "passes/pipeline.h"
#include "quant_matmul_harness.h"

using namespace anybit;
using programs::QuantFormat;
using programs::ZeroMode;
using isa::DataType;

namespace {

// A program's kernel on the simulator (split_activations before a kernel that reads its As).
void simulate(const vm::Program& program, const vm::Arguments& args) {
  const auto lowered = passes::run_pipeline(program);
  backend_cuda::SimKernel::build(lowered.program, lowered.kernel).launch(args);
}

}  // namespace

TEST_CASE("quantized matmul kernels on the simulator match the double reference") {
  const QuantFormat cases[] = {
      {DataType::signed_int(4), DataType::f16(), 128, ZeroMode::None},
      {DataType::signed_int(3), DataType::bf16(), 32, ZeroMode::None},
      {DataType::unsigned_int(4), DataType::f16(), 64, ZeroMode::Integer},
      {DataType::unsigned_int(2), DataType::bf16(), 128, ZeroMode::Float},
      {isa::parse_dtype("f4e2m1"), DataType::f16(), 32, ZeroMode::None},
      {isa::parse_dtype("f6e3m2"), DataType::bf16(), 128, ZeroMode::None},
      {isa::parse_dtype("f8e4m3"), DataType::f16(), 64, ZeroMode::None},
      {isa::parse_dtype("f7e5m1"), DataType::f16(), 128, ZeroMode::None},  // beyond f16 at exponent 31: split activations
      {isa::parse_dtype("f8e6m1"), DataType::f16(), 64, ZeroMode::None},   // beyond f16: split activations, bf16 mma
      {isa::parse_dtype("f8e7m0"), DataType::f16(), 64, ZeroMode::Float},  // beyond f16 with zeros: scaled through f32
      {DataType::signed_int(8), DataType::bf16(), 32, ZeroMode::None},
      {DataType::unsigned_int(5), DataType::f16(), 32, ZeroMode::Integer},
      {DataType::signed_int(4), DataType::f16(), 64, ZeroMode::None, true},
      {DataType::unsigned_int(3), DataType::bf16(), 32, ZeroMode::Float, true},
      // small floats with one exponent bit, packed and decoded as integers (with float zero points too)
      {isa::parse_dtype("f3e1m1"), DataType::f16(), 128, ZeroMode::None},
      {isa::parse_dtype("f6e1m4"), DataType::bf16(), 64, ZeroMode::None, true},
      {isa::parse_dtype("f5e1m3"), DataType::f16(), 32, ZeroMode::Float},
  };
  int index = 0;
  for (const auto& f : cases) {
    const std::int64_t M = index % 2 ? 33 : 5, N = index % 3 ? 80 : 64, K = 128;
    ++index;
    CAPTURE(f.weights.name());
    CAPTURE(f.activations.name());
    CAPTURE(M);
    CAPTURE(N);
    const auto program = programs::quant_matmul(f);
    const auto lowered = passes::run_pipeline(program);
    const auto sim = backend_cuda::SimKernel::build(lowered.program, lowered.kernel);
    auto p = testing::make_problem(f, M, N, K, static_cast<std::uint64_t>(100 + index));
    testing::split_activations(p, {}, simulate);
    const auto counters = sim.launch(testing::arguments(p));
    CHECK(testing::relative_error(p) <= testing::tolerance(f, K));
    // Integer codes without zero points decode with the magic offset left in (but 8-bit codes into bf16,
    // which go through f32), and one more mma per step for a warp's two n8 tiles takes the offsets out.
    const bool offset_decode = programs::packed_code_type(f.weights).is_integer() && f.zeros == ZeroMode::None &&
                               !(f.weights.bits() == 8 && f.activations == DataType::bf16());
    // Split activations: the weights meet A_hi and A_lo, two mma per step and tile.
    const int per_step = offset_decode ? 3 : programs::splits_activations(f, {}) ? 4 : 2;
    CHECK(counters.mma == static_cast<std::uint64_t>(((M + 15) / 16) * ((N + 63) / 64) * 4 * (K / 16) * per_step));
  }
}

TEST_CASE("every format x {f16, bf16} on the simulator: groups {32, 128, K}, zero modes, M tails, K = 256") {
  // Configurations cycle through the matrix so every format meets two group sizes (one per activation
  // type), unsigned formats meet the zero modes, and M and N tails occur throughout.
  const int groups[] = {32, 128, 256};
  const std::int64_t Ms[] = {1, 5, 16, 33}, Ns[] = {64, 80};
  int index = 0;
  for (DataType t : isa::all_dtypes()) {
    if (t.bits() > 8 || t.is_bool()) continue;
    for (DataType act : {DataType::f16(), DataType::bf16()}) {
      ZeroMode zeros = ZeroMode::None;
      if (t.kind() == isa::TypeKind::UnsignedInt) zeros = index % 3 == 0 ? ZeroMode::None : index % 3 == 1 ? ZeroMode::Integer : ZeroMode::Float;
      const QuantFormat f{t, act, groups[index % 3], zeros};
      const std::int64_t M = Ms[index % 4], N = Ns[index % 2], K = 256;
      ++index;
      CAPTURE(t.name());
      CAPTURE(act.name());
      CAPTURE(f.group);
      CAPTURE(static_cast<int>(zeros));
      CAPTURE(M);
      CAPTURE(N);
      const auto lowered = passes::run_pipeline(programs::quant_matmul(f));
      const auto sim = backend_cuda::SimKernel::build(lowered.program, lowered.kernel);
      auto p = testing::make_problem(f, M, N, K, static_cast<std::uint64_t>(1000 + index));
      testing::split_activations(p, {}, simulate);
      sim.launch(testing::arguments(p));
      CHECK(testing::relative_error(p) <= testing::tolerance(f, K));
    }
  }
  CHECK(index == 86);
}

TEST_CASE("offset decode under activations of one sign: still within the tolerance") {
  // Integer weights reach the mma with their magic number left in (up to 1024 + 2^(b-1) per weight), and a
  // second mma subtracts sum(a * offset). Activations of one sign (a in [0.5, 2]) keep that sum from
  // cancelling across the group (only the alternating signs of neighbouring offsets do): the worst case
  // for the f32 partial sums. Both operand sides, with and without unrolling.
  int index = 0;
  for (DataType t : {DataType::signed_int(1), DataType::signed_int(2), DataType::unsigned_int(3), DataType::signed_int(4),
                     DataType::unsigned_int(8)})
    for (DataType act : {DataType::f16(), DataType::bf16()})
      for (bool on_a : {false, true}) {
        const QuantFormat f{t, act, 128, ZeroMode::None};
        programs::Schedule s;
        s.stages = 4;
        s.weights_on_a = on_a;
        s.unroll = index++ % 2 ? 2 : 1;
        CAPTURE(t.name());
        CAPTURE(act.name());
        CAPTURE(programs::describe(s));
        const auto lowered = passes::run_pipeline(programs::quant_matmul(f, s));
        // (8-bit codes into bf16 go through f32: exact, no offsets)
        CHECK((lowered.kernel.source.find("t_part_o") != std::string::npos) == !(t.bits() == 8 && act == DataType::bf16()));
        const auto sim = backend_cuda::SimKernel::build(lowered.program, lowered.kernel);
        const std::int64_t M = on_a ? 5 : 16, N = 64, K = 1024;
        auto p = testing::make_problem(f, M, N, K, static_cast<std::uint64_t>(70 + index));
        std::mt19937_64 rng(static_cast<std::uint64_t>(index));
        std::uniform_real_distribution<double> magnitude(0.5, 2.0);
        for (std::size_t i = 0; i < p.a.size(); ++i) {
          p.a[i] = isa::encode(act, magnitude(rng));
          isa::write_code(p.buffers.at("A"), i, act.bits(), p.a[i]);
        }
        sim.launch(testing::arguments(p));
        CHECK(testing::relative_error(p) <= testing::tolerance(f, K));
      }
}

TEST_CASE("the direct schedule and pipelines of 2 and 4 stages compute the same products") {
  for (int stages : {0, 2, 4}) {
    for (const QuantFormat& f : {QuantFormat{DataType::signed_int(4), DataType::f16(), 64, ZeroMode::None},
                                 QuantFormat{DataType::unsigned_int(3), DataType::bf16(), 32, ZeroMode::Float, true}}) {
      CAPTURE(stages);
      CAPTURE(f.weights.name());
      programs::Schedule schedule;
      schedule.stages = stages;
      const auto lowered = passes::run_pipeline(programs::quant_matmul(f, schedule));
      CHECK((lowered.kernel.shared_bytes > 0) == (stages > 0));
      const auto sim = backend_cuda::SimKernel::build(lowered.program, lowered.kernel);
      auto p = testing::make_problem(f, 17, 80, 256, static_cast<std::uint64_t>(stages + 40));
      sim.launch(testing::arguments(p));
      CHECK(testing::relative_error(p) <= testing::tolerance(f, 256));
    }
  }
}

TEST_CASE("schedules on the simulator: warps, M tiles and split-K with the f32 reduction kernel") {
  const testing::ScheduleCase cases[] = {
      {{DataType::signed_int(4), DataType::f16(), 128, ZeroMode::None, true}, {4, 1, 3, 4}, 1, 80, 512},
      {{DataType::unsigned_int(3), DataType::bf16(), 32, ZeroMode::Float}, {2, 2, 2, 3}, 21, 48, 256},
      {{isa::parse_dtype("f6e3m2"), DataType::f16(), 256, ZeroMode::None}, {8, 2, 3, 1}, 70, 144, 256},
      {{isa::parse_dtype("f4e2m1"), DataType::bf16(), 256, ZeroMode::None, true}, {1, 1, 4, 3}, 16, 16, 256},
      {{DataType::signed_int(4), DataType::f16(), 128, ZeroMode::None, true}, {4, 1, 3, 1, true}, 5, 80, 512},
      {{DataType::unsigned_int(3), DataType::bf16(), 64, ZeroMode::Integer}, {2, 2, 2, 2, true}, 13, 48, 256},
      {{isa::parse_dtype("f7e5m1"), DataType::f16(), 32, ZeroMode::None, true}, {4, 1, 0, 3, true}, 8, 64, 256},
      // two and four chunks an iteration: 3 chunks in slices of two (the last iteration reaches past K and
      // its copies fill zeros), four groups an iteration, zero points
      {{DataType::signed_int(4), DataType::f16(), 128, ZeroMode::None, true}, {4, 1, 4, 2, true, 2}, 3, 64, 384},
      {{isa::parse_dtype("f6e3m2"), DataType::bf16(), 32, ZeroMode::None}, {2, 1, 2, 1, false, 4}, 11, 32, 512},
      {{DataType::unsigned_int(3), DataType::f16(), 64, ZeroMode::Integer}, {2, 1, 3, 1, true, 2}, 8, 32, 384},
      // weights decoded once into shared memory (sd): M past the block's 128 or 64 rows, N past its columns,
      // chunks of 2 and 8 steps, two decoded tiles an iteration, split-K, zeros, bf16, f32-scaled weights
      {{isa::parse_dtype("f4e2m1"), DataType::f16(), 32, ZeroMode::None}, {4, 2, 3, 1, false, 1, false, true}, 131, 80, 256},
      {{DataType::unsigned_int(4), DataType::bf16(), 128, ZeroMode::Integer, true}, {4, 1, 2, 2, false, 2, false, true}, 70, 64, 512},
      {{isa::parse_dtype("f8e6m1"), DataType::f16(), 64, ZeroMode::None}, {2, 2, 2, 1, false, 1, false, true}, 40, 48, 256},
  };
  int index = 0;
  for (const auto& [f, s, M, N, K] : cases) {
    CAPTURE(f.weights.name());
    CAPTURE(programs::describe(s));
    auto p = testing::make_problem(f, M, N, K, static_cast<std::uint64_t>(700 + index++));
    testing::run_schedule(p, s, [](const vm::Program& prog, const vm::Arguments& args) {
      const auto lowered = passes::run_pipeline(prog);
      backend_cuda::SimKernel::build(lowered.program, lowered.kernel).launch(args);
    });
    CHECK(testing::relative_error(p) <= testing::tolerance(f, K));
  }
}

TEST_CASE("odd group sizes on the simulator: chunks of 5, 6 and 7 steps (groups of 80, 96, 112)") {
  const QuantFormat cases[] = {
      {DataType::signed_int(4), DataType::f16(), 80, ZeroMode::None},
      {DataType::unsigned_int(3), DataType::bf16(), 96, ZeroMode::Integer, true},
      {isa::parse_dtype("f6e3m2"), DataType::f16(), 112, ZeroMode::None},
  };
  int index = 0;
  for (const auto& f : cases) {
    CAPTURE(f.weights.name());
    CAPTURE(f.group);
    for (const programs::Schedule& s : {programs::Schedule{4, 1, 4, 1}, programs::Schedule{2, 1, 4, 2, true}}) {
      CAPTURE(programs::describe(s));
      auto p = testing::make_problem(f, 3 + 7 * index, 48, 2 * f.group, static_cast<std::uint64_t>(700 + index));
      testing::run_schedule(p, s, [](const vm::Program& prog, const vm::Arguments& args) {
        const auto lowered = passes::run_pipeline(prog);
        backend_cuda::SimKernel::build(lowered.program, lowered.kernel).launch(args);
      });
      CHECK(testing::relative_error(p) <= testing::tolerance(f, p.K));
    }
    ++index;
  }
}

TEST_CASE("shared memory traffic of the pipelined schedules is free of bank conflicts") {
  // ldmatrix reads eight 16-byte rows of the A tile at once: the swizzle must put them in distinct banks for
  // rows of 8 and of 16 chunks (chunks of 4 and 8 steps); weight loads and cp.async writes are contiguous;
  // the decoded weights (sd) are written 16 bytes a lane and read back 16 bytes a lane in fragment order,
  // lanes 8W + 8 values apart (four warps and two).
  for (int group : {64, 128}) {
    const QuantFormat f{DataType::signed_int(4), DataType::f16(), group, ZeroMode::None};
    for (const programs::Schedule& s : {programs::Schedule{4, 1, 4, 1}, programs::Schedule{4, 2, 4, 1},
                                        programs::Schedule{4, 1, 4, 1, true}, programs::Schedule{4, 1, 4, 1, false, 1, false, true},
                                        programs::Schedule{2, 2, 3, 1, false, 1, false, true}}) {
      CAPTURE(group);
      CAPTURE(programs::describe(s));
      auto p = testing::make_problem(f, 32, 64, 256, 42);
      const auto lowered = passes::run_pipeline(programs::quant_matmul(f, s));
      const auto c = backend_cuda::SimKernel::build(lowered.program, lowered.kernel).launch(testing::arguments(p));
      CHECK(c.shared_wavefronts == c.shared_ideal_wavefronts);
      CHECK(testing::relative_error(p) <= testing::tolerance(f, p.K));
    }
  }
}

TEST_CASE("whole tiles: weights, scales and zeros loaded without bounds tests, the same products, the promise checked") {
  // Shapes that are whole tiles of each schedule (N a multiple of 16 * warps, K of its unroll chunks); M
  // keeps its tail (A and C stay masked). Each runs on the interpreter, which fails an unmasked access
  // outside its view, and on the simulator, compiled with the divisibility facts matmul compiles with.
  const testing::ScheduleCase cases[] = {
      {{DataType::signed_int(4), DataType::f16(), 128, ZeroMode::None, true}, {4, 1, 4, 2, true, 2}, 3, 64, 1024},
      {{DataType::unsigned_int(3), DataType::bf16(), 32, ZeroMode::Float}, {2, 2, 3, 3}, 21, 96, 384},
      {{isa::parse_dtype("f4e3m0"), DataType::f16(), 64, ZeroMode::None}, {4, 1, 4, 1, true, 4}, 5, 128, 1024},
      {{isa::parse_dtype("f7e6m0"), DataType::f16(), 32, ZeroMode::None, true}, {4, 1, 0, 3, true}, 8, 64, 192},
      {{DataType::unsigned_int(2), DataType::f16(), 128, ZeroMode::Integer}, {2, 1, 4, 1, false, 2}, 17, 32, 512},
      {{isa::parse_dtype("f8e4m3"), DataType::bf16(), 128, ZeroMode::None}, {8, 1, 3, 2, false, 2}, 16, 128, 1024},
      {{DataType::signed_int(4), DataType::f16(), 128, ZeroMode::None}, {4, 2, 2, 1, false, 1, false, true}, 150, 64, 1024},
  };
  int index = 0;
  for (auto [f, s, M, N, K] : cases) {
    CAPTURE(f.weights.name());
    REQUIRE(programs::whole_tiles_fit(f, s, N, K));
    s.whole_tiles = true;
    CAPTURE(programs::describe(s));
    passes::PipelineOptions o;
    o.emit.divisibility = programs::quant_matmul_divisibility(f, s);
    const auto whole = passes::run_pipeline(programs::quant_matmul(f, s), o).kernel;
    CHECK(whole.source.find("< t_gS_extent") == std::string::npos);
    CHECK(whole.source.find("< t_gWbytes_extent") == std::string::npos);
    CHECK(whole.source.find("< t_gW_extent") == std::string::npos);
    CHECK(whole.source.find("< t_gA") != std::string::npos);  // M's rows
    CHECK(whole.source.find(fmt::format("N % {} == 0", 16 * s.warps)) != std::string::npos);
    // A stage's weight copy takes several rounds of the block's threads: they address from round 0's
    // offset at constant distances.
    if (s.stages > 0) CHECK(whole.source.find("ab::cp_async<16>(dst, t_gW") != std::string::npos);
    if (s.stages > 0 && programs::chunk_steps(f) * f.weights.bits() > 16)  // c b bytes a lane: more than 16
      CHECK(whole.source.find(") + r * ") != std::string::npos);
    programs::Schedule masked = s;
    masked.whole_tiles = false;
    CHECK(passes::run_pipeline(programs::quant_matmul(f, masked), o).kernel.source.find("< t_gS_extent") != std::string::npos);
    for (bool simulated : {false, true}) {
      CAPTURE(simulated);
      auto p = testing::make_problem(f, M, N, K, static_cast<std::uint64_t>(900 + index++));
      testing::run_schedule(p, s, [&](const vm::Program& prog, const vm::Arguments& args) {
        if (!simulated) return vm::interpret(prog, args);
        const auto lowered = passes::run_pipeline(prog, o);
        backend_cuda::SimKernel::build(lowered.program, lowered.kernel).launch(args);
      });
      CHECK(testing::relative_error(p) <= testing::tolerance(f, K));
    }
  }
  // A problem that is not whole tiles: the launch refuses it by name before it runs, and the interpreter
  // would have stopped at the first load past the view.
  const QuantFormat f{DataType::signed_int(4), DataType::f16(), 128, ZeroMode::None};
  programs::Schedule s{4, 1, 4, 1, false, 2};
  CHECK_FALSE(programs::whole_tiles_fit(f, s, 80, 256));
  CHECK_FALSE(programs::whole_tiles_fit(f, s, 64, 128));  // one chunk: half an iteration
  CHECK_FALSE(programs::whole_tiles_fit(programs::QuantFormat{f.weights, f.activations, 96}, s, 64, 192));  // 16 * 6 * 2
  s.whole_tiles = true;
  passes::PipelineOptions o;
  o.emit.divisibility = programs::quant_matmul_divisibility(f, s);
  const auto lowered = passes::run_pipeline(programs::quant_matmul(f, s), o);
  const auto sim = backend_cuda::SimKernel::build(lowered.program, lowered.kernel);
  auto p = testing::make_problem(f, 4, 80, 256, 5);
  CHECK_THROWS_WITH_AS(sim.launch(testing::arguments(p)), doctest::Contains("parameter N = 80 is not a multiple of 64, which it was compiled for"),
                       Error);
  CHECK_THROWS_WITH_AS(vm::interpret(programs::quant_matmul(f, s), testing::arguments(p)),
                       doctest::Contains("is outside the view %g"), Error);
  auto q = testing::make_problem(f, 4, 64, 384, 6);
  CHECK_THROWS_WITH_AS(sim.launch(testing::arguments(q)), doctest::Contains("parameter K = 384 is not a multiple of 256"), Error);
}

TEST_CASE("f6e5m0 and f7e5m1 with f16 activations: split (bf16 fields, no multiply) or halved into f16") {
  // Beyond f16 by their exponent-31 codes (2^16, 1.5 x 2^16): with split activations the fields move into
  // bf16's and A carries 2^112 (127 - bias 15); where they do not split (f6e5m0 with the weights on B, and
  // under shared decode) they decode halved into f16, the sum doubled once. The codes at the formats'
  // extremes: exponent 31, the smallest magnitudes (f7e5m1's subnormal 2^-15: a bf16 subnormal times
  // 2^-112, an f16 subnormal halved), zero, both signs.
  struct Case {
    const char* name;
    programs::Schedule s;
    bool split;
    std::string decode;  // in the kernel: the halving multiply and clamp, or the split's moved fields
    std::vector<std::pair<std::uint32_t, double>> extremes;
  };
  const std::vector<std::pair<std::uint32_t, double>> f6 = {{0x1F, 65536.0}, {0x3F, -65536.0}, {0x01, 0x1p-14}, {0x21, -0x1p-14}, {0x00, 0.0}, {0x10, 2.0}};
  const std::vector<std::pair<std::uint32_t, double>> f7 = {{0x3F, 98304.0}, {0x3E, 65536.0}, {0x7F, -98304.0}, {0x7E, -65536.0}, {0x01, 0x1p-15}, {0x41, -0x1p-15},
                                                            {0x02, 0x1p-14}, {0x03, 0x1.8p-14}, {0x3D, 49152.0}, {0x00, 0.0}, {0x40, -0.0}};
  const programs::Schedule on_b{}, on_a{4, 1, 3, 1, true}, shared_decode{2, 1, 3, 1, false, 1, false, true};
  const Case cases[] = {
      {"f6e5m0", on_b, false, "ab::hmin2(ab::hmul2(x & 0x7c007c00u, 0x38003800u), 0x78007800u)", f6},
      {"f7e5m1", shared_decode, false, "ab::hmin2(ab::hmul2(x & 0x7e007e00u, 0x38003800u), ab::lop3<0xf8>(", f7},
      {"f6e5m0", on_a, true, "(x >> 3) & 0x0f800f80u", f6},
      {"f7e5m1", on_b, true, "(x >> 3) & 0x0fc00fc0u", f7},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    CAPTURE(programs::describe(c.s));
    const QuantFormat f{isa::parse_dtype(c.name), DataType::f16(), 64, ZeroMode::None};
    for (const auto& [code, value] : c.extremes) CHECK(isa::decode(f.weights, code) == value);
    CHECK(programs::splits_activations(f, c.s) == c.split);
    const std::string text = vm::print(programs::quant_matmul(f, c.s));
    CHECK(text.find(c.split ? "{dtype=bf16, exp=-112, finite}" : "{dtype=f16, exp=-1, finite}") != std::string::npos);  // the codes' cast
    CHECK(text.find("dtype=f32, exp=") == std::string::npos);      // no scale per weight
    CHECK((text.find("%unbiased = mul %acc") != std::string::npos) == !c.split);
    passes::PipelineOptions o;
    o.emit.divisibility = programs::quant_matmul_divisibility(f, c.s);
    const auto lowered = passes::run_pipeline(programs::quant_matmul(f, c.s), o);
    CAPTURE(fmt::format("{}", fmt::join(lowered.kernel.fallbacks, "; ")));
    CHECK(lowered.kernel.fallbacks.empty());  // no cast element by element
    CHECK(lowered.kernel.source.find(c.decode) != std::string::npos);
    if (c.split) CHECK(lowered.kernel.source.find("hmul2") == std::string::npos);
    // Every third weight at an extreme, every row, and activations at f16's extremes (65504 and 65472 split
    // against 65280, the smallest subnormal), on the interpreter and the simulator.
    auto p = testing::make_problem(f, 3, 32, 128, 78);
    for (std::size_t i = 0; i < p.q.codes.size(); ++i)
      if (i % 3 == 0) p.q.codes[i] = static_cast<std::uint8_t>(c.extremes[i / 3 % c.extremes.size()].first);
    p.buffers.at("Wp") = programs::pack_weights(f, p.q.codes, p.N, p.K);
    const double big[] = {65504.0, -65472.0, 0x1p-24, -0x1p-14};
    for (std::size_t i = 0; i < p.a.size(); i += 61) {
      p.a[i] = isa::encode(DataType::f16(), big[i / 61 % 4]);
      isa::write_code(p.buffers.at("A"), i, 16, p.a[i]);
    }
    testing::run_schedule(p, c.s, [](const vm::Program& prog, const vm::Arguments& args) { vm::interpret(prog, args); });
    CHECK(testing::relative_error(p) <= testing::tolerance(f, 128));
    std::fill(p.buffers.at("C").begin(), p.buffers.at("C").end(), 0);
    testing::run_schedule(p, c.s, simulate);
    CHECK(testing::relative_error(p) <= testing::tolerance(f, 128));
  }
}

TEST_CASE("split_activations on the simulator: the emitted conversions write what the interpreter does") {
  // Every finite f16 code (exponent 31 aside) as a 62 x 1024 A; then A_hi + A_lo must be A 2^112 exactly
  // (f6e5m0: 127 - bias 15), A_hi finite (65280 2^112 at most: the largest bf16).
  const std::int64_t M = 62, K = 1024;
  std::vector<std::uint8_t> a(static_cast<std::size_t>(M * K) * 2);
  std::size_t n = 0;
  for (std::uint32_t code = 0; code < 0x10000; ++code)
    if ((code & 0x7c00) != 0x7c00) isa::write_code(a, n++, 16, code);
  REQUIRE(n == static_cast<std::size_t>(M * K));
  std::vector<std::uint8_t> interpreted(static_cast<std::size_t>(2 * M * K) * 2, 0xff), simulated = interpreted;
  const auto program = programs::split_activations({isa::parse_dtype("f6e5m0"), DataType::f16(), 64, ZeroMode::None});
  for (auto* out : {&interpreted, &simulated}) {
    vm::Arguments args;
    args.buffers["A"] = std::span<std::uint8_t>(a);
    args.buffers["As"] = std::span<std::uint8_t>(*out);
    args.scalars = {{"M", M}, {"K", K}};
    if (out == &interpreted) vm::interpret(program, args);
    else simulate(program, args);
  }
  CHECK(interpreted == simulated);
  int inexact = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double hi = isa::decode(DataType::bf16(), isa::read_code(simulated, i, 16));
    const double lo = isa::decode(DataType::bf16(), isa::read_code(simulated, n + i, 16));
    if (!std::isfinite(hi) || hi + lo != std::ldexp(isa::decode(DataType::f16(), isa::read_code(a, i, 16)), 112)) ++inexact;
  }
  CHECK(inexact == 0);
}
