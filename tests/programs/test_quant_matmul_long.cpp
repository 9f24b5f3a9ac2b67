// label long: the full cross product of the quantized matmul on the simulator, against the double
// reference: every 1..8-bit format x {f16, bf16} x groups {32, 128, K} x every zero mode the format allows x
// M in {1, 5, 16, 33} x N in {64, 80}, K = 256, with the shapes spread over six schedules (the chosen one,
// and split-K / M-tile / warp / unroll variants: two chunks an iteration, in slices of whole iterations or
// not split, and four, whose last iteration reaches past K). `ctest -L long` or `tools/setup.sh --test-long`
// runs it.
#include <doctest/doctest.h>

#include "backend_cuda/simulator.h"
#include "passes/pipeline.h"
#include "quant_matmul_harness.h"

using namespace anybit;
using programs::QuantFormat;
using programs::Schedule;
using programs::ZeroMode;
using isa::DataType;

TEST_CASE("every format x activation x group x zero mode x shape on the simulator") {
  const std::int64_t K = 256;
  const std::int64_t Ms[] = {1, 5, 16, 33}, Ns[] = {64, 80};
  int runs = 0;
  for (DataType t : isa::all_dtypes()) {
    if (t.bits() > 8 || t.is_bool()) continue;
    std::vector<ZeroMode> zero_modes{ZeroMode::None};
    if (t.kind() == isa::TypeKind::UnsignedInt) zero_modes = {ZeroMode::None, ZeroMode::Integer, ZeroMode::Float};
    for (DataType act : {DataType::f16(), DataType::bf16()})
      for (int group : {32, 128, 256})
        for (ZeroMode zeros : zero_modes) {
          const QuantFormat f{t, act, group, zeros, runs % 3 == 0};
          std::map<std::string, backend_cuda::SimKernel> kernels;
          auto run = [&](const vm::Program& program, const vm::Arguments& args) {
            auto it = kernels.find(program.name);
            if (it == kernels.end()) {
              const auto lowered = passes::run_pipeline(program);
              it = kernels.emplace(program.name, backend_cuda::SimKernel::build(lowered.program, lowered.kernel)).first;
            }
            it->second.launch(args);
          };
          int shape = 0;
          for (std::int64_t M : Ms)
            for (std::int64_t N : Ns) {
              const Schedule variants[] = {programs::choose_schedule(f, M, N, K), {2, 1, 2, 3, true, 2}, {4, 2, 3, 2},
                                           {8, 2, 4, 1, true}, {4, 2, 2, 1, true, 4}, {2, 1, 4, 1, false, 2}};
              const Schedule s = variants[shape++ % 6];
              CAPTURE(t.name());
              CAPTURE(act.name());
              CAPTURE(group);
              CAPTURE(static_cast<int>(zeros));
              CAPTURE(M);
              CAPTURE(N);
              CAPTURE(programs::describe(s));
              auto p = testing::make_problem(f, M, N, K, static_cast<std::uint64_t>(runs));
              testing::run_schedule(p, s, run);
              CHECK(testing::relative_error(p) <= testing::tolerance(f, K));
              ++runs;
            }
        }
  }
  CHECK(runs == (8 * 3 + 35) * 2 * 3 * 8);
}
