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

#include <cstring>

#include "backend_cuda/gpu.h"
#include "isa/error.h"
#include "programs/examples.h"

TEST_CASE("launch arguments are marshaled in signature order with the kernel's C types") {
  const auto p = programs::tiled_matmul();  // (A, B, C: pointers; M, N, K: i32)
  const auto args = backend_cuda::marshal_arguments(p, {0x1000, 0x2000, 0x3000}, {{"M", 33}, {"N", -2}, {"K", 64}});
  REQUIRE(args.size() == 6);
  std::uint64_t ptr = 0;
  std::memcpy(&ptr, args[1].data(), 8);
  CHECK(args[1].size() == 8);
  CHECK(ptr == 0x2000);
  std::int32_t n = 0;
  CHECK(args[4].size() == 4);
  std::memcpy(&n, args[4].data(), 4);
  CHECK(n == -2);
  CHECK_THROWS_WITH_AS(backend_cuda::marshal_arguments(p, {1, 2, 3}, {{"M", 1}, {"N", 1}, {"K", std::int64_t{1} << 40}}),
                       doctest::Contains("'K' = 1099511627776 does not fit i32"), anybit::Error);
  CHECK_THROWS_WITH_AS(backend_cuda::marshal_arguments(p, {1, 2}, {}), doctest::Contains("no device pointer for parameter 'C'"),
                       anybit::Error);
}

TEST_CASE("an explicit GPU run without a driver fails with the probe's message") {
  if (backend_cuda::driver_status().available) return;
  const auto p = programs::vector_add();
  std::vector<std::uint8_t> a(16), b(16), c(16);
  anybit::vm::Arguments args{{{"a", a}, {"b", b}, {"c", c}}, {{"n", 4}}};
  CHECK_THROWS_WITH_AS(backend_cuda::run_on_gpu(p, backend_cuda::emit_cuda(p), args),
                       doctest::Contains("no CUDA driver"), anybit::Error);
}

#include "backend_cuda/gpu.h"

TEST_CASE("timed loops rotate through copies that exceed 100 MB together, 2 to 64 of them") {
  CHECK(backend_cuda::rotation_copies(std::size_t{8} << 20) == 13);     // 13 x 8 MiB = 104 MiB
  CHECK(backend_cuda::rotation_copies(std::size_t{60} << 20) == 2);     // two copies already exceed 100 MiB
  CHECK(backend_cuda::rotation_copies(std::size_t{500} << 20) == 2);    // never fewer than two
  CHECK(backend_cuda::rotation_copies(std::size_t{512} << 10) == 64);   // 201 would be needed; capped
  CHECK(backend_cuda::rotation_copies(0) == 64);
}
