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

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

#include "isa/error.h"
#include "programs/matmul_api.h"
#include "../programs/quant_matmul_harness.h"

TEST_CASE("matmul_device on device memory, every chosen schedule and split-K, matches the reference") {
  using programs::QuantFormat;
  using programs::ZeroMode;
  using isa::DataType;
  for (const auto& [f, M, N, K] :
       {std::tuple{QuantFormat{DataType::signed_int(4), DataType::f16(), 128, ZeroMode::None}, 1, 4096, 4096},
        {QuantFormat{DataType::unsigned_int(3), DataType::bf16(), 64, ZeroMode::Integer, true}, 16, 1024, 2048},
        {QuantFormat{isa::parse_dtype("f6e3m2"), DataType::f16(), 128, ZeroMode::None}, 70, 512, 1024},
        // beyond f16: split activations (with split-K at M = 1), the workspace the call allocates
        {QuantFormat{isa::parse_dtype("f8e6m1"), DataType::f16(), 64, ZeroMode::None}, 1, 2048, 2048},
        {QuantFormat{isa::parse_dtype("f7e6m0"), DataType::f16(), 128, ZeroMode::None, true}, 16, 1024, 1024}}) {
    CAPTURE(f.weights.name());
    CAPTURE(M);
    auto p = testing::make_problem(f, M, N, K, 3);
    std::map<std::string, std::uint64_t> device;
    for (auto& [name, bytes] : p.buffers) {
      device[name] = backend_cuda::gpu_alloc(bytes.size());
      backend_cuda::gpu_copy_to_device(device[name], bytes.data(), bytes.size());
    }
    auto ptr = [&](const char* name) { return device.count(name) ? reinterpret_cast<void*>(device[name]) : nullptr; };
    MatmulProblem q{f, M, N, K, ptr("A"), ptr("Wp"), ptr("S"), ptr("Z"), ptr("C"), ptr("B")};
    const auto r = matmul_device(q);
    CHECK(r.ran_on_gpu);
    backend_cuda::gpu_synchronize();
    backend_cuda::gpu_copy_to_host(p.buffers.at("C").data(), device["C"], p.buffers.at("C").size());
    CHECK(testing::relative_error(p) <= testing::tolerance(f, K));
    // Host memory given to the device entry point is refused by name.
    MatmulProblem host = q;
    host.A = p.buffers.at("A").data();
    CHECK_THROWS_WITH_AS(matmul_device(host), doctest::Contains("matmul: A is not device memory"), Error);
    for (auto& [name, d] : device) backend_cuda::gpu_free(d);
  }
}

TEST_CASE("split activations on the tensor cores: weights whose moved bf16 fields are subnormal") {
  // The smallest codes of f8e6m1 (2^-31) and f7e5m1 (2^-15) move into bf16 as the subnormal 2^-127 (A carries
  // 2^96 and 2^112): a tensor core flushing subnormal inputs would give C = 0 here. Every weight is one of
  // them, both signs; the scales lift the sums into f16's normal range.
  using programs::QuantFormat;
  using programs::ZeroMode;
  using isa::DataType;
  for (const auto& [name, positive, negative, scale] :
       {std::tuple{"f8e6m1", 0x01u, 0x81u, 32768.0}, std::tuple{"f7e5m1", 0x01u, 0x41u, 1.0}}) {
    CAPTURE(name);
    const QuantFormat f{isa::parse_dtype(name), DataType::f16(), 64, ZeroMode::None};
    REQUIRE(programs::splits_activations(f, programs::choose_schedule(f, 16, 256, 512)));
    auto p = testing::make_problem(f, 16, 256, 512, 5);
    for (std::size_t i = 0; i < p.q.codes.size(); ++i) p.q.codes[i] = static_cast<std::uint8_t>(i % 3 ? positive : negative);
    p.buffers.at("Wp") = programs::pack_weights(f, p.q.codes, p.N, p.K);
    for (std::size_t i = 0; i < p.q.scales.size(); ++i) {
      p.q.scales[i] = isa::encode(DataType::f16(), scale);
      isa::write_code(p.buffers.at("S"), i, 16, p.q.scales[i]);
    }
    std::map<std::string, std::uint64_t> device;
    for (auto& [buffer, bytes] : p.buffers) {
      device[buffer] = backend_cuda::gpu_alloc(bytes.size());
      backend_cuda::gpu_copy_to_device(device[buffer], bytes.data(), bytes.size());
    }
    auto ptr = [&](const char* buffer) { return device.count(buffer) ? reinterpret_cast<void*>(device[buffer]) : nullptr; };
    CHECK(matmul_device(MatmulProblem{f, p.M, p.N, p.K, ptr("A"), ptr("Wp"), ptr("S"), ptr("Z"), ptr("C"), ptr("B")}).ran_on_gpu);
    backend_cuda::gpu_synchronize();
    backend_cuda::gpu_copy_to_host(p.buffers.at("C").data(), device["C"], p.buffers.at("C").size());
    CHECK(testing::relative_error(p) <= testing::tolerance(f, p.K));
    const auto ref = programs::reference_quant_matmul(f, p.a, p.q, p.M, p.N, p.K);
    CHECK(*std::max_element(ref.begin(), ref.end()) > 1e-3);  // the sums are f16 normals, not flushed to 0
    for (auto& [buffer, d] : device) backend_cuda::gpu_free(d);
  }
}

TEST_CASE("tune_matmul stores its fastest schedule, and later calls use it") {
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("anybit_tune_{}", ::getpid());
  setenv("ANYBIT_CACHE_DIR", dir.c_str(), 1);
  const programs::QuantFormat f{isa::DataType::signed_int(4), isa::DataType::f16(), 128, programs::ZeroMode::None};
  const auto t = tune_matmul(f, 1, 1024, 1024, 3);
  CHECK(t.timings.size() > 10);
  for (const auto& [s, ms] : t.timings) CHECK(ms > 0);
  const auto& device = backend_cuda::driver_status().devices.front();
  CHECK(load_tuned_schedule(tuned_schedule_path(f, 1, 1024, 1024, device.arch())) == t.best);
  CHECK(matmul_schedule(f, 1, 1024, 1024, Device::gpu()) == t.best);
  unsetenv("ANYBIT_CACHE_DIR");
  std::filesystem::remove_all(dir);
}

#include "programs/bench.h"

TEST_CASE("vmc bench --gpu: kernels and cuBLAS fp16 timed with rotated weights") {
  bench::Options o;
  o.formats = bench::parse_formats("int4,f6e3m2", isa::DataType::f16(), 128);
  o.Ms = {1, 16};
  o.NKs = {{2048, 2048}};
  o.arch = backend_cuda::driver_status().devices.front().arch();
  o.gpu = true;
  const auto report = bench::run(o);
  REQUIRE(report.rows.size() == 4);
  CHECK(markdown(report).find("## Measured on the GPU") != std::string::npos);
  for (const auto& row : report.rows) {
    CAPTURE(row.format);
    CHECK(row.measured_ms > 0);
    CHECK(row.measured_min_ms <= row.measured_ms);
    CHECK(row.measured_ms <= row.measured_max_ms);
    CHECK(row.timing == "graph");  // the library's launches are capturable
    CHECK_FALSE(row.device.empty());
    CHECK(row.cublas_ms > 0);
  }
}
