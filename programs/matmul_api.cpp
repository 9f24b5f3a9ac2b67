#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

#include "backend_cuda/driver.h"
#include "backend_cuda/launch.h"
#include "isa/bitpack.h"
#include "isa/error.h"
#include "passes/pipeline.h"
#include "programs/anybit.h"
#include "programs/matmul_api.h"

namespace anybit {

namespace {

struct CompiledMatmul {
  vm::Program program;
  backend_cuda::EmittedKernel kernel;
  std::unique_ptr<backend_cuda::SimKernel> sim;  // built on first simulator use
};

// One compiled kernel per format for the process.
CompiledMatmul& compiled(const programs::QuantFormat& f) {
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<CompiledMatmul>> cache;
  const vm::Program program = programs::quant_matmul(f);
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = cache[program.name];
  if (!slot) {
    passes::PipelineOptions options;
    options.emit.divisibility = {{"N", 16}, {"K", 16}};  // guaranteed by programs::validate
    auto lowered = passes::run_pipeline(program, options);
    slot = std::make_unique<CompiledMatmul>(CompiledMatmul{lowered.program, lowered.kernel, nullptr});
  }
  return *slot;
}

void check_pointer(const void* p, const char* name, bool required) {
  if (!p) {
    if (required) throw Error(fmt::format("matmul: {} is null", name));
    return;
  }
  if (reinterpret_cast<std::uintptr_t>(p) % 16 != 0) throw Error(fmt::format("matmul: {} is not 16-byte aligned", name));
}

std::size_t bytes_of(std::int64_t count, isa::DataType t) {
  return isa::packed_bytes(static_cast<std::size_t>(count), t.bits());
}

}  // namespace

MatmulResult matmul(const MatmulProblem& p, Device device) {
  const auto& f = p.format;
  programs::validate(f, p.M, p.N, p.K);
  check_pointer(p.A, "A", true);
  check_pointer(p.packed_weights, "packed_weights", true);
  check_pointer(p.scales, "scales", true);
  check_pointer(p.C, "C", true);
  check_pointer(p.zeros, "zeros", f.zeros != programs::ZeroMode::None);
  if (f.zeros == programs::ZeroMode::None && p.zeros)
    throw Error("matmul: zeros given, but the format has no zero points (ZeroMode::None)");
  check_pointer(p.bias, "bias", f.bias);
  if (!f.bias && p.bias) throw Error("matmul: bias given, but the format has none (set format.bias)");
  CompiledMatmul& c = compiled(f);
  // The kernel's buffers, as spans over the caller's memory (the kernel writes only C).
  const std::int64_t groups = p.K / f.group;
  const std::size_t packed = programs::pack_weights(f, std::vector<std::uint8_t>(static_cast<std::size_t>(p.N * p.K), 0), p.N, p.K).size();
  auto span = [](const void* ptr, std::size_t n) { return std::span<std::uint8_t>(static_cast<std::uint8_t*>(const_cast<void*>(ptr)), n); };
  vm::Arguments args;
  args.buffers["A"] = span(p.A, bytes_of(p.M * p.K, f.activations));
  args.buffers["Wp"] = span(p.packed_weights, packed);
  args.buffers["S"] = span(p.scales, bytes_of(groups * p.N, f.activations));
  if (f.zeros != programs::ZeroMode::None)
    args.buffers["Z"] = span(p.zeros, bytes_of(groups * p.N, f.zeros == programs::ZeroMode::Integer ? f.weights : f.activations));
  args.buffers["C"] = span(p.C, bytes_of(p.M * p.N, f.activations));
  if (f.bias) args.buffers["B"] = span(p.bias, bytes_of(p.N, f.activations));
  args.scalars = {{"M", p.M}, {"N", p.N}, {"K", p.K}};
  MatmulResult result;
  const auto& driver = backend_cuda::driver_status();
  if (device.kind == Device::Kind::Gpu || (device.kind == Device::Kind::Best && driver.available)) {
    const auto report = backend_cuda::launch(c.program, c.kernel, args, backend_cuda::Target::Gpu);
    result.ran_on_gpu = true;
    result.note = report.note;
    return result;
  }
  {
    static std::mutex build;
    std::lock_guard<std::mutex> lock(build);
    if (!c.sim) c.sim = std::make_unique<backend_cuda::SimKernel>(backend_cuda::SimKernel::build(c.program, c.kernel));
  }
  c.sim->launch(args);
  result.note = device.kind == Device::Kind::Best ? "no GPU (" + driver.message + "); ran on the CPU simulator" : "CPU simulator";
  return result;
}

}  // namespace anybit

// ---- C API

namespace {

thread_local std::string last_error;

anybit_status fail(anybit_status status, const std::string& message) {
  last_error = message;
  return status;
}

// Classifies an anybit::Error from the C++ layer by what it names.
anybit_status classify(const std::string& m) {
  if (m.find("is not one of") != std::string::npos) return ANYBIT_ERROR_INVALID_ARGUMENT;
  if (m.find("is null") != std::string::npos) return ANYBIT_ERROR_NULL_POINTER;
  if (m.find("aligned") != std::string::npos) return ANYBIT_ERROR_MISALIGNED_POINTER;
  if (m.find("group size") != std::string::npos) return ANYBIT_ERROR_GROUP_SIZE;
  if (m.find("zero") != std::string::npos) return ANYBIT_ERROR_ZERO_POINTS;
  if (m.find("multiples of 16") != std::string::npos || m.find("shapes must be positive") != std::string::npos ||
      m.find("weights given") != std::string::npos)
    return ANYBIT_ERROR_UNSUPPORTED_SHAPE;
  if (m.find("data type") != std::string::npos || m.find("weights must be") != std::string::npos ||
      m.find("activations must be") != std::string::npos)
    return ANYBIT_ERROR_UNSUPPORTED_FORMAT;
  if (m.find("CUDA driver") != std::string::npos || m.find("GPU") != std::string::npos) return ANYBIT_ERROR_NO_GPU;
  return ANYBIT_ERROR_INTERNAL;
}

template <typename Fn>
anybit_status guarded(Fn fn) {
  try {
    fn();
    last_error.clear();
    return ANYBIT_OK;
  } catch (const anybit::Error& e) {
    return fail(classify(e.what()), e.what());
  } catch (const std::exception& e) {
    return fail(ANYBIT_ERROR_INTERNAL, e.what());
  }
}

anybit::programs::QuantFormat to_format(const anybit_format* f) {
  if (!f) throw anybit::Error("matmul: format is null");
  if (!f->weight_type) throw anybit::Error("matmul: format->weight_type is null");
  if (!f->activation_type) throw anybit::Error("matmul: format->activation_type is null");
  if (f->zeros < ANYBIT_ZEROS_NONE || f->zeros > ANYBIT_ZEROS_FLOAT)
    throw anybit::Error(fmt::format("matmul: zero mode {} is not one of ANYBIT_ZEROS_NONE/INT/FLOAT", static_cast<int>(f->zeros)));
  return {anybit::isa::parse_dtype(f->weight_type), anybit::isa::parse_dtype(f->activation_type), f->group,
          f->zeros == ANYBIT_ZEROS_INT     ? anybit::programs::ZeroMode::Integer
          : f->zeros == ANYBIT_ZEROS_FLOAT ? anybit::programs::ZeroMode::Float
                                           : anybit::programs::ZeroMode::None,
          f->bias != 0};
}

}  // namespace

extern "C" {

anybit_status anybit_packed_size(const anybit_format* format, int64_t N, int64_t K, size_t* bytes) {
  return guarded([&] {
    const auto f = to_format(format);
    if (!bytes) throw anybit::Error("matmul: bytes is null");
    anybit::programs::validate(f, 1, N, K);
    *bytes = anybit::programs::pack_weights(f, std::vector<std::uint8_t>(static_cast<std::size_t>(N * K), 0), N, K).size();
  });
}

anybit_status anybit_pack_weights(const anybit_format* format, const uint8_t* codes, int64_t N, int64_t K, uint8_t* packed) {
  return guarded([&] {
    const auto f = to_format(format);
    if (!codes) throw anybit::Error("matmul: codes is null");
    if (!packed) throw anybit::Error("matmul: packed is null");
    anybit::programs::validate(f, 1, N, K);
    const std::vector<std::uint8_t> c(codes, codes + N * K);
    const auto out = anybit::programs::pack_weights(f, c, N, K);
    std::copy(out.begin(), out.end(), packed);
  });
}

anybit_status anybit_matmul(const anybit_format* format, int64_t M, int64_t N, int64_t K, const void* A,
                            const void* packed_weights, const void* scales, const void* zeros, const void* bias,
                            void* C, anybit_device device) {
  return guarded([&] {
    anybit::MatmulProblem p{to_format(format), M, N, K, A, packed_weights, scales, zeros, C, bias};
    if (device < ANYBIT_DEVICE_BEST || device > ANYBIT_DEVICE_SIM)
      throw anybit::Error(fmt::format("matmul: device {} is not one of ANYBIT_DEVICE_BEST/GPU/SIM", static_cast<int>(device)));
    anybit::matmul(p, device == ANYBIT_DEVICE_GPU   ? anybit::Device::gpu()
                      : device == ANYBIT_DEVICE_SIM ? anybit::Device::sim()
                                                    : anybit::Device::best());
  });
}

const char* anybit_last_error(void) { return last_error.c_str(); }

}  // extern "C"
