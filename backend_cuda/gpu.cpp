#include "backend_cuda/gpu.h"

#include <dlfcn.h>

#include <cstring>
#include <mutex>

#include "backend_cuda/cache.h"
#include "backend_cuda/driver.h"
#include "isa/error.h"

namespace anybit::backend_cuda {

namespace {

// Driver API entry points (CUresult is an int; handles are opaque pointers; CUdeviceptr is 64-bit).
struct Api {
  int (*cuDevicePrimaryCtxRetain)(void**, int);
  int (*cuCtxSetCurrent)(void*);
  int (*cuModuleLoadData)(void**, const void*);
  int (*cuModuleUnload)(void*);
  int (*cuModuleGetFunction)(void**, void*, const char*);
  int (*cuFuncSetAttribute)(void*, int, int);
  int (*cuLaunchKernel)(void*, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void*, void**, void**);
  int (*cuMemAlloc)(std::uint64_t*, std::size_t);
  int (*cuMemFree)(std::uint64_t);
  int (*cuMemcpyHtoD)(std::uint64_t, const void*, std::size_t);
  int (*cuMemcpyDtoH)(void*, std::uint64_t, std::size_t);
  int (*cuCtxSynchronize)();
  int (*cuEventCreate)(void**, unsigned);
  int (*cuEventRecord)(void*, void*);
  int (*cuEventSynchronize)(void*);
  int (*cuEventElapsedTime)(float*, void*, void*);
  int (*cuEventDestroy)(void*);
  int (*cuGetErrorString)(int, const char**);
};

constexpr int kMaxDynamicSharedBytes = 8;  // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES

const Api& api() {
  static Api a{};
  static std::once_flag once;
  std::call_once(once, [] {
    void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) return;
    auto load = [&](auto& fn, const char* name) { fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(h, name)); };
    load(a.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    load(a.cuCtxSetCurrent, "cuCtxSetCurrent");
    load(a.cuModuleLoadData, "cuModuleLoadData");
    load(a.cuModuleUnload, "cuModuleUnload");
    load(a.cuModuleGetFunction, "cuModuleGetFunction");
    load(a.cuFuncSetAttribute, "cuFuncSetAttribute");
    load(a.cuLaunchKernel, "cuLaunchKernel");
    load(a.cuMemAlloc, "cuMemAlloc_v2");
    load(a.cuMemFree, "cuMemFree_v2");
    load(a.cuMemcpyHtoD, "cuMemcpyHtoD_v2");
    load(a.cuMemcpyDtoH, "cuMemcpyDtoH_v2");
    load(a.cuCtxSynchronize, "cuCtxSynchronize");
    load(a.cuEventCreate, "cuEventCreate");
    load(a.cuEventRecord, "cuEventRecord");
    load(a.cuEventSynchronize, "cuEventSynchronize");
    load(a.cuEventElapsedTime, "cuEventElapsedTime_v2");
    if (!a.cuEventElapsedTime) load(a.cuEventElapsedTime, "cuEventElapsedTime");
    load(a.cuEventDestroy, "cuEventDestroy_v2");
    load(a.cuGetErrorString, "cuGetErrorString");
  });
  return a;
}

void check(int result, const char* what) {
  if (result == 0) return;
  const char* text = "unknown error";
  if (api().cuGetErrorString) api().cuGetErrorString(result, &text);
  throw Error(fmt::format("CUDA driver: {} failed: {} ({})", what, text, result));
}

}  // namespace

std::vector<std::vector<std::uint8_t>> marshal_arguments(const vm::Program& program,
                                                         const std::vector<std::uint64_t>& device_pointers,
                                                         const std::map<std::string, std::int64_t>& scalars) {
  std::vector<std::vector<std::uint8_t>> out;
  std::size_t next_pointer = 0;
  for (const vm::Param& p : program.params) {
    std::vector<std::uint8_t> bytes;
    if (p.kind == vm::ParamKind::Pointer) {
      if (next_pointer >= device_pointers.size())
        throw Error(fmt::format("no device pointer for parameter '{}'", p.name));
      const std::uint64_t v = device_pointers[next_pointer++];
      bytes.resize(8);
      std::memcpy(bytes.data(), &v, 8);
    } else {
      auto it = scalars.find(p.name);
      if (it == scalars.end()) throw Error(fmt::format("no value given for parameter '{}'", p.name));
      if (p.kind == vm::ParamKind::I32) {
        if (it->second < INT32_MIN || it->second > INT32_MAX)
          throw Error(fmt::format("parameter '{}' = {} does not fit i32", p.name, it->second));
        const std::int32_t v = static_cast<std::int32_t>(it->second);
        bytes.resize(4);
        std::memcpy(bytes.data(), &v, 4);
      } else {
        const long long v = it->second;
        bytes.resize(8);
        std::memcpy(bytes.data(), &v, 8);
      }
    }
    out.push_back(std::move(bytes));
  }
  return out;
}

GpuRun run_on_gpu(const vm::Program& program, const EmittedKernel& kernel, const vm::Arguments& args) {
  const DriverStatus& status = driver_status();
  if (!status.available) throw Error(status.message);
  const Api& a = api();
  const GpuDevice& device = status.devices.front();
  void* context = nullptr;
  check(a.cuDevicePrimaryCtxRetain(&context, device.ordinal), "cuDevicePrimaryCtxRetain");
  check(a.cuCtxSetCurrent(context), "cuCtxSetCurrent");
  KernelCache cache(KernelCache::default_directory());
  const CompiledKernel compiled = cache.get_or_compile(kernel, {device.arch()});
  void* module = nullptr;
  check(a.cuModuleLoadData(&module, compiled.cubin.data()), "cuModuleLoadData");
  void* function = nullptr;
  std::vector<std::uint64_t> pointers;
  std::vector<std::pair<std::uint64_t, std::span<std::uint8_t>>> copies;
  GpuRun run;
  run.device = device.name;
  try {
    check(a.cuModuleGetFunction(&function, module, kernel.name.c_str()), "cuModuleGetFunction");
    if (kernel.shared_bytes > 48 * 1024)
      check(a.cuFuncSetAttribute(function, kMaxDynamicSharedBytes, static_cast<int>(kernel.shared_bytes)), "cuFuncSetAttribute");
    for (const vm::Param& p : program.params) {
      if (p.kind != vm::ParamKind::Pointer) continue;
      auto it = args.buffers.find(p.name);
      if (it == args.buffers.end()) throw Error(fmt::format("no buffer given for pointer parameter '{}'", p.name));
      std::uint64_t dptr = 0;
      check(a.cuMemAlloc(&dptr, std::max<std::size_t>(it->second.size(), 16)), "cuMemAlloc");
      pointers.push_back(dptr);
      copies.emplace_back(dptr, it->second);
      check(a.cuMemcpyHtoD(dptr, it->second.data(), it->second.size()), "cuMemcpyHtoD");
    }
    auto marshaled = marshal_arguments(program, pointers, args.scalars);
    std::vector<void*> params;
    for (auto& m : marshaled) params.push_back(m.data());
    const auto grid = vm::grid_size(program, args.scalars);
    void *start = nullptr, *stop = nullptr;
    check(a.cuEventCreate(&start, 0), "cuEventCreate");
    check(a.cuEventCreate(&stop, 0), "cuEventCreate");
    check(a.cuEventRecord(start, nullptr), "cuEventRecord");
    check(a.cuLaunchKernel(function, static_cast<unsigned>(grid[0]), static_cast<unsigned>(grid[1]),
                           static_cast<unsigned>(grid[2]), static_cast<unsigned>(kernel.threads), 1, 1,
                           static_cast<unsigned>(kernel.shared_bytes), nullptr, params.data(), nullptr),
          "cuLaunchKernel");
    check(a.cuEventRecord(stop, nullptr), "cuEventRecord");
    check(a.cuEventSynchronize(stop), "cuEventSynchronize (the kernel failed)");
    check(a.cuEventElapsedTime(&run.milliseconds, start, stop), "cuEventElapsedTime");
    a.cuEventDestroy(start);
    a.cuEventDestroy(stop);
    for (auto& [dptr, host] : copies) check(a.cuMemcpyDtoH(host.data(), dptr, host.size()), "cuMemcpyDtoH");
  } catch (...) {
    for (auto p : pointers) a.cuMemFree(p);
    a.cuModuleUnload(module);
    throw;
  }
  for (auto p : pointers) a.cuMemFree(p);
  a.cuModuleUnload(module);
  return run;
}

}  // namespace anybit::backend_cuda
