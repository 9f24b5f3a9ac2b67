// gpu tier: runs only with a usable GPU (gpu_main.cpp reports the executable skipped otherwise).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include "backend_cuda/driver.h"
#include "backend_cuda/nvrtc.h"
#include "passes/pipeline.h"
#include "programs/examples.h"

using namespace anybit;

TEST_CASE("the driver lists devices this NVRTC can build cubins for") {
  const auto& s = backend_cuda::driver_status();
  REQUIRE_FALSE(s.devices.empty());
  for (const auto& d : s.devices) {
    CAPTURE(d.name);
    CHECK(d.compute_major >= 8);
    const auto k = passes::run_pipeline(programs::tiled_matmul()).kernel;
    CHECK_FALSE(backend_cuda::compile(k, {d.arch()}).cubin.empty());
  }
}

#include "backend_cuda/gpu.h"
#include "backend_cuda/simulator.h"
#include "vm/host_buffers.h"

TEST_CASE("the tiled matmul on the GPU matches the simulator and the interpreter") {
  const auto p = passes::run_pipeline(programs::tiled_matmul()).program;
  const auto k = passes::run_pipeline(p).kernel;
  std::map<std::string, std::int64_t> s = {{"M", 45}, {"N", 40}, {"K", 72}};
  auto gpu = vm::random_buffers(p, s, 3), sim = gpu, interp = gpu;
  const auto run = backend_cuda::run_on_gpu(p, k, vm::as_arguments(gpu, s));
  CHECK(run.milliseconds >= 0);
  backend_cuda::SimKernel::build(p, k).launch(vm::as_arguments(sim, s));
  vm::interpret(p, vm::as_arguments(interp, s));
  CHECK(gpu.at("A") == interp.at("A"));
  const auto& c = gpu.at("C");
  for (std::size_t i = 0; i < c.size() / 4; ++i) {
    float g, r;
    std::memcpy(&g, &c[4 * i], 4);
    std::memcpy(&r, &interp.at("C")[4 * i], 4);
    CHECK(std::fabs(g - r) <= 1e-4f * (1 + std::fabs(r)));
  }
}
