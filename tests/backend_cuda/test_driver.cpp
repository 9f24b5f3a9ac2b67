// The driver loader: never linked, a clear message without a driver, devices listed with one (gpu tier).
#include <doctest/doctest.h>

#include "backend_cuda/driver.h"

using namespace anybit;

TEST_CASE("a missing driver library is a message, not a crash") {
  const auto s = backend_cuda::probe_driver("libanybit-no-such-driver.so.1");
  CHECK_FALSE(s.available);
  CHECK(s.message.find("no CUDA driver: cannot load libanybit-no-such-driver.so.1") == 0);
  CHECK(s.devices.empty());
}
