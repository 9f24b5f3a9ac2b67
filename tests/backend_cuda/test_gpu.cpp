// gpu tier: runs only with a usable GPU (gpu_main.cpp reports the executable skipped otherwise).
#include <doctest/doctest.h>

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
