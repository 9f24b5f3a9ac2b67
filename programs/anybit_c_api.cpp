// The C entry points of programs/anybit.h over the C++ call: status codes classified from anybit::Error
// messages, the thread's last message kept for anybit_last_error().
#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <vector>

#include "isa/dtype.h"
#include "isa/error.h"
#include "programs/anybit.h"
#include "programs/matmul_api.h"


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
  if (m.find("workspace holds") != std::string::npos) return ANYBIT_ERROR_WORKSPACE;
  if (m.find("pack_weights: W[") != std::string::npos || m.find("pack_weights: the code of W[") != std::string::npos)
    return ANYBIT_ERROR_WEIGHT_CODE;
  if (m.find("not device memory") != std::string::npos) return ANYBIT_ERROR_INVALID_ARGUMENT;
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
    *bytes = anybit::programs::packed_size(f, N, K);
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

anybit_status anybit_workspace_size(const anybit_format* format, int64_t M, int64_t N, int64_t K, size_t* bytes) {
  return guarded([&] {
    const auto f = to_format(format);
    if (!bytes) throw anybit::Error("matmul: bytes is null");
    *bytes = anybit::matmul_workspace_bytes(f, anybit::matmul_schedule(f, M, N, K, anybit::Device::gpu()), M, N, K);
  });
}

anybit_status anybit_matmul_device(const anybit_format* format, int64_t M, int64_t N, int64_t K, const void* A,
                                   const void* packed_weights, const void* scales, const void* zeros, const void* bias,
                                   void* C, void* workspace, size_t workspace_bytes, void* stream) {
  return guarded([&] {
    anybit::MatmulProblem p{to_format(format), M, N, K, A, packed_weights, scales, zeros, C, bias, workspace, workspace_bytes};
    anybit::MatmulOptions options;
    options.stream = stream;
    anybit::matmul_device(p, options);
  });
}

const char* anybit_last_error(void) { return last_error.c_str(); }

}  // extern "C"
