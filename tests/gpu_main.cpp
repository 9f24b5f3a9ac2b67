// Entry point of gpu-tier test executables: without a usable GPU the whole executable is reported to
// ctest as skipped (exit code 77), with the reason printed.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "backend_cuda/driver.h"

int main(int argc, char** argv) {
  const auto& status = anybit::backend_cuda::driver_status();
  if (!status.available) {
    std::printf("SKIPPED: %s\n", status.message.c_str());
    return 77;
  }
  doctest::Context context(argc, argv);
  return context.run();
}
