// Quantized matmul kernels compiled to CUDA: on the simulator against the double reference (sim), and
// through NVRTC with zero spills (compile).
#include <doctest/doctest.h>

#include "backend_cuda/nvrtc.h"
#include "backend_cuda/simulator.h"
#include "passes/pipeline.h"
#include "quant_matmul_harness.h"

using namespace anybit;
using programs::QuantFormat;
using programs::ZeroMode;
using isa::DataType;

TEST_CASE("quantized matmul kernels on the simulator match the double reference") {
  const QuantFormat cases[] = {
      {DataType::signed_int(4), DataType::f16(), 128, ZeroMode::None},
      {DataType::signed_int(3), DataType::bf16(), 32, ZeroMode::None},
      {DataType::unsigned_int(4), DataType::f16(), 64, ZeroMode::Integer},
      {DataType::unsigned_int(2), DataType::bf16(), 128, ZeroMode::Float},
      {isa::parse_dtype("f4e2m1"), DataType::f16(), 32, ZeroMode::None},
      {isa::parse_dtype("f6e3m2"), DataType::bf16(), 128, ZeroMode::None},
      {isa::parse_dtype("f8e4m3"), DataType::f16(), 64, ZeroMode::None},
      {isa::parse_dtype("f7e5m1"), DataType::f16(), 128, ZeroMode::None},
      {DataType::signed_int(8), DataType::bf16(), 32, ZeroMode::None},
      {DataType::unsigned_int(5), DataType::f16(), 32, ZeroMode::Integer},
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
    const auto counters = sim.launch(testing::arguments(p));
    CHECK(testing::relative_error(p) <= testing::tolerance(f, K));
    CHECK(counters.mma == static_cast<std::uint64_t>(((M + 15) / 16) * ((N + 63) / 64) * 4 * 2 * (K / 16)));
  }
}
