#include "backend_cuda/cublas.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

#include <fmt/format.h>

#include "backend_cuda/driver.h"
#include "isa/error.h"

namespace anybit::backend_cuda {

namespace {

struct Cublas {
  void* handle = nullptr;  // cublasHandle_t
  int (*create)(void**) = nullptr;
  int (*set_stream)(void*, void*) = nullptr;
  int (*hgemm)(void*, int, int, int, int, int, const std::uint16_t*, const void*, int, const void*, int,
               const std::uint16_t*, void*, int) = nullptr;
  std::string error;
};

Cublas& cublas() {
  static Cublas c;
  static std::once_flag once;
  std::call_once(once, [] {
    std::vector<std::string> names;
    if (const char* env = std::getenv("ANYBIT_CUBLAS")) names.push_back(env);
    for (const char* n : {"libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "/usr/local/cuda/lib64/libcublas.so"})
      names.push_back(n);
    void* lib = nullptr;
    for (const auto& n : names)
      if ((lib = dlopen(n.c_str(), RTLD_NOW | RTLD_LOCAL))) break;
    if (!lib) {
      c.error = "cuBLAS not found (libcublas.so.13/.12/.11; set ANYBIT_CUBLAS to its path)";
      return;
    }
    c.create = reinterpret_cast<decltype(c.create)>(dlsym(lib, "cublasCreate_v2"));
    c.set_stream = reinterpret_cast<decltype(c.set_stream)>(dlsym(lib, "cublasSetStream_v2"));
    c.hgemm = reinterpret_cast<decltype(c.hgemm)>(dlsym(lib, "cublasHgemm"));
    if (!c.create || !c.set_stream || !c.hgemm) c.error = "libcublas lacks cublasCreate_v2, cublasSetStream_v2 or cublasHgemm";
  });
  return c;
}

}  // namespace

bool cublas_available(std::string* why) {
  const auto& c = cublas();
  if (why) *why = c.error;
  return c.error.empty();
}

void cublas_hgemm_nt(std::uint64_t A, std::uint64_t W, std::uint64_t C, int M, int N, int K, void* stream) {
  auto& c = cublas();
  if (!c.error.empty()) throw Error(c.error);
  if (!driver_status().available) throw Error(driver_status().message);
  if (!c.handle) {
    if (int s = c.create(&c.handle)) throw Error(fmt::format("cublasCreate failed with status {}", s));
  }
  if (int s = c.set_stream(c.handle, stream)) throw Error(fmt::format("cublasSetStream failed with status {}", s));
  // Column-major view: C^T (N x M) = W (N x K, W^T stored) . A^T (K x M).
  const std::uint16_t one = 0x3C00, zero = 0;
  constexpr int kTranspose = 1, kNone = 0;
  if (int s = c.hgemm(c.handle, kTranspose, kNone, N, M, K, &one, reinterpret_cast<const void*>(W), K,
                      reinterpret_cast<const void*>(A), K, &zero, reinterpret_cast<void*>(C), N))
    throw Error(fmt::format("cublasHgemm failed with status {}", s));
}

}  // namespace anybit::backend_cuda
