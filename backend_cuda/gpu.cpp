#include "backend_cuda/gpu.h"

#include <dlfcn.h>

#include <algorithm>
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
  int (*cuPointerGetAttribute)(void*, int, std::uint64_t);
  int (*cuStreamCreate)(void**, unsigned);
  int (*cuStreamDestroy)(void*);
  int (*cuStreamSynchronize)(void*);
  int (*cuStreamBeginCapture)(void*, int);
  int (*cuStreamEndCapture)(void*, void**);
  int (*cuGraphInstantiate)(void**, void*, unsigned long long);
  int (*cuGraphLaunch)(void*, void*);
  int (*cuGraphExecDestroy)(void*);
  int (*cuGraphDestroy)(void*);
};

constexpr int kMaxDynamicSharedBytes = 8;  // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
constexpr int kPointerMemoryType = 2;      // CU_POINTER_ATTRIBUTE_MEMORY_TYPE
constexpr unsigned kStreamNonBlocking = 1;  // CU_STREAM_NON_BLOCKING
constexpr int kCaptureModeRelaxed = 2;      // CU_STREAM_CAPTURE_MODE_RELAXED

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
    load(a.cuPointerGetAttribute, "cuPointerGetAttribute");
    load(a.cuStreamCreate, "cuStreamCreate");
    load(a.cuStreamDestroy, "cuStreamDestroy_v2");
    load(a.cuStreamSynchronize, "cuStreamSynchronize");
    load(a.cuStreamBeginCapture, "cuStreamBeginCapture_v2");
    load(a.cuStreamEndCapture, "cuStreamEndCapture");
    load(a.cuGraphInstantiate, "cuGraphInstantiateWithFlags");
    load(a.cuGraphLaunch, "cuGraphLaunch");
    load(a.cuGraphExecDestroy, "cuGraphExecDestroy");
    load(a.cuGraphDestroy, "cuGraphDestroy");
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

namespace {

// The primary context of device 0, current on the calling thread.
const GpuDevice& enter_device() {
  const DriverStatus& status = driver_status();
  if (!status.available) throw Error(status.message);
  const GpuDevice& device = status.devices.front();
  static void* context = nullptr;
  static std::once_flag once;
  std::call_once(once, [&] { check(api().cuDevicePrimaryCtxRetain(&context, device.ordinal), "cuDevicePrimaryCtxRetain"); });
  if (!context) throw Error("CUDA driver: no primary context for device 0");
  check(api().cuCtxSetCurrent(context), "cuCtxSetCurrent");
  return device;
}

// Loaded modules by kernel source, kept for the process (the driver unloads them at exit).
void* kernel_function(const EmittedKernel& kernel, const GpuDevice& device) {
  static std::mutex mutex;
  static std::map<std::string, void*> functions;
  const std::string key = sha256_hex(kernel.source) + kernel.name;
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = functions.find(key); it != functions.end()) return it->second;
  KernelCache cache(KernelCache::default_directory());
  const CompiledKernel compiled = cache.get_or_compile(kernel, {device.arch()});
  void* module = nullptr;
  check(api().cuModuleLoadData(&module, compiled.cubin.data()), "cuModuleLoadData");
  void* function = nullptr;
  try {
    check(api().cuModuleGetFunction(&function, module, kernel.name.c_str()), "cuModuleGetFunction");
    if (kernel.shared_bytes > 48 * 1024)
      check(api().cuFuncSetAttribute(function, kMaxDynamicSharedBytes, static_cast<int>(kernel.shared_bytes)), "cuFuncSetAttribute");
  } catch (...) {
    api().cuModuleUnload(module);
    throw;
  }
  return functions[key] = function;
}

}  // namespace

std::uint64_t gpu_alloc(std::size_t bytes) {
  enter_device();
  std::uint64_t p = 0;
  check(api().cuMemAlloc(&p, std::max<std::size_t>(bytes, 16)), "cuMemAlloc");
  return p;
}

void gpu_free(std::uint64_t pointer) noexcept {
  if (pointer && api().cuMemFree) api().cuMemFree(pointer);
}

void gpu_copy_to_device(std::uint64_t dst, const void* src, std::size_t bytes) {
  enter_device();
  check(api().cuMemcpyHtoD(dst, src, bytes), "cuMemcpyHtoD");
}

void gpu_copy_to_host(void* dst, std::uint64_t src, std::size_t bytes) {
  enter_device();
  check(api().cuMemcpyDtoH(dst, src, bytes), "cuMemcpyDtoH");
}

void gpu_synchronize() {
  enter_device();
  check(api().cuCtxSynchronize(), "cuCtxSynchronize (a kernel failed)");
}

bool is_device_pointer(std::uint64_t pointer) {
  enter_device();
  if (!api().cuPointerGetAttribute) return true;  // cannot tell; the launch reports bad addresses
  unsigned type = 0;
  return api().cuPointerGetAttribute(&type, kPointerMemoryType, pointer) == 0;
}

DeviceFunction device_function(const EmittedKernel& kernel) { return {kernel_function(kernel, enter_device())}; }

float launch_on_device(const vm::Program& program, const EmittedKernel& kernel,
                       const std::map<std::string, std::uint64_t>& pointers,
                       const std::map<std::string, std::int64_t>& scalars, void* stream, bool timed) {
  return launch_on_device(program, kernel, device_function(kernel), pointers, scalars, stream, timed);
}

float launch_on_device(const vm::Program& program, const EmittedKernel& kernel, DeviceFunction f,
                       const std::map<std::string, std::uint64_t>& pointers,
                       const std::map<std::string, std::int64_t>& scalars, void* stream, bool timed) {
  enter_device();
  const Api& a = api();
  void* function = f.handle;
  if (!function) throw Error(fmt::format("kernel {}: no device function (device_function loads it)", kernel.name));
  std::vector<std::uint64_t> ordered;
  for (const vm::Param& p : program.params) {
    if (p.kind != vm::ParamKind::Pointer) continue;
    auto it = pointers.find(p.name);
    if (it == pointers.end()) throw Error(fmt::format("no device pointer given for parameter '{}'", p.name));
    ordered.push_back(it->second);
  }
  auto marshaled = marshal_arguments(program, ordered, scalars);
  std::vector<void*> params;
  for (auto& m : marshaled) params.push_back(m.data());
  const auto grid = vm::grid_size(program, scalars);
  check_grid_limits(kernel.name, grid);
  check_param_assumptions(kernel, scalars);
  for (auto g : grid)
    if (g < 1) throw Error(fmt::format("kernel {}: grid dimension {} is empty", kernel.name, g));
  void *start = nullptr, *stop = nullptr;
  if (timed) {
    check(a.cuEventCreate(&start, 0), "cuEventCreate");
    check(a.cuEventCreate(&stop, 0), "cuEventCreate");
    check(a.cuEventRecord(start, stream), "cuEventRecord");
  }
  float milliseconds = 0;
  try {
    check(a.cuLaunchKernel(function, static_cast<unsigned>(grid[0]), static_cast<unsigned>(grid[1]),
                           static_cast<unsigned>(grid[2]), static_cast<unsigned>(kernel.threads), 1, 1,
                           static_cast<unsigned>(kernel.shared_bytes), stream, params.data(), nullptr),
          "cuLaunchKernel");
    if (timed) {
      check(a.cuEventRecord(stop, stream), "cuEventRecord");
      check(a.cuEventSynchronize(stop), "cuEventSynchronize (the kernel failed)");
      check(a.cuEventElapsedTime(&milliseconds, start, stop), "cuEventElapsedTime");
    }
  } catch (...) {
    if (start) a.cuEventDestroy(start);
    if (stop) a.cuEventDestroy(stop);
    throw;
  }
  if (start) a.cuEventDestroy(start);
  if (stop) a.cuEventDestroy(stop);
  return milliseconds;
}

int rotation_copies(std::size_t bytes) {
  return static_cast<int>(std::clamp<std::size_t>((std::size_t{100} << 20) / std::max<std::size_t>(bytes, 1) + 1, 2, 64));
}

GpuTiming gpu_time(const std::function<void(int, void*)>& work, int launches, int repeats) {
  enter_device();
  if (repeats < 1 || launches < 1)
    throw Error(fmt::format("timing needs at least one launch and one repeat, not {} and {}", launches, repeats));
  const Api& a = api();
  // Everything created here is released on every path out.
  struct Owned {
    const Api& a;
    void *stream = nullptr, *start = nullptr, *stop = nullptr, *graph = nullptr, *exec = nullptr;
    ~Owned() {
      if (exec) a.cuGraphExecDestroy(exec);
      if (graph) a.cuGraphDestroy(graph);
      if (start) a.cuEventDestroy(start);
      if (stop) a.cuEventDestroy(stop);
      if (stream) a.cuStreamDestroy(stream);
    }
  } o{a};
  check(a.cuStreamCreate(&o.stream, kStreamNonBlocking), "cuStreamCreate");
  check(a.cuEventCreate(&o.start, 0), "cuEventCreate");
  check(a.cuEventCreate(&o.stop, 0), "cuEventCreate");
  // The warm-up runs outside any capture: module loads, library handles and their workspaces happen here.
  work(0, o.stream);
  check(a.cuStreamSynchronize(o.stream), "cuStreamSynchronize (the warm-up failed)");

  GpuTiming t;
  t.launches = launches;
  const bool can_capture = a.cuStreamBeginCapture && a.cuStreamEndCapture && a.cuGraphInstantiate && a.cuGraphLaunch;
  if (can_capture && a.cuStreamBeginCapture(o.stream, kCaptureModeRelaxed) == 0) {
    bool captured = true;
    try {
      for (int i = 0; i < launches; ++i) work(i, o.stream);
    } catch (const Error&) {
      captured = false;
    }
    const int ended = a.cuStreamEndCapture(o.stream, &o.graph);
    t.graph = captured && ended == 0 && o.graph && a.cuGraphInstantiate(&o.exec, o.graph, 0) == 0;
  }
  auto issue = [&] {
    if (t.graph) {
      check(a.cuGraphLaunch(o.exec, o.stream), "cuGraphLaunch");
    } else {
      for (int i = 0; i < launches; ++i) work(i, o.stream);
    }
  };
  issue();  // a warm-up of the timed form too (the graph's first launch uploads it)
  check(a.cuStreamSynchronize(o.stream), "cuStreamSynchronize (the timed work failed)");
  std::vector<float> times;
  for (int r = 0; r < repeats; ++r) {
    check(a.cuEventRecord(o.start, o.stream), "cuEventRecord");
    issue();
    check(a.cuEventRecord(o.stop, o.stream), "cuEventRecord");
    check(a.cuEventSynchronize(o.stop), "cuEventSynchronize (the timed work failed)");
    float ms = 0;
    check(a.cuEventElapsedTime(&ms, o.start, o.stop), "cuEventElapsedTime");
    times.push_back(ms / static_cast<float>(launches));
  }
  std::sort(times.begin(), times.end());
  t.milliseconds = times[times.size() / 2];
  t.min_milliseconds = times.front();
  t.max_milliseconds = times.back();
  return t;
}

GpuRun run_on_gpu(const vm::Program& program, const EmittedKernel& kernel, const vm::Arguments& args) {
  const GpuDevice& device = enter_device();
  GpuRun run;
  run.device = device.name;
  std::map<std::string, std::uint64_t> pointers;
  auto release = [&] {
    for (auto& [name, p] : pointers) gpu_free(p);
  };
  try {
    for (const vm::Param& p : program.params) {
      if (p.kind != vm::ParamKind::Pointer) continue;
      auto it = args.buffers.find(p.name);
      if (it == args.buffers.end()) throw Error(fmt::format("no buffer given for pointer parameter '{}'", p.name));
      pointers[p.name] = gpu_alloc(it->second.size());
      gpu_copy_to_device(pointers[p.name], it->second.data(), it->second.size());
    }
    run.milliseconds = launch_on_device(program, kernel, pointers, args.scalars, nullptr, true);
    for (auto& [name, p] : pointers) gpu_copy_to_host(args.buffers.at(name).data(), p, args.buffers.at(name).size());
  } catch (...) {
    release();
    throw;
  }
  release();
  return run;
}

}  // namespace anybit::backend_cuda
