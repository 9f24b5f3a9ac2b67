#include "backend_cuda/driver.h"

#include <dlfcn.h>
#include <fmt/format.h>

namespace anybit::backend_cuda {

namespace {

// The few driver entry points the probe needs, with their C signatures (CUresult is an int enum,
// CUdevice an int).
using cuInit_t = int (*)(unsigned);
using cuDeviceGetCount_t = int (*)(int*);
using cuDeviceGet_t = int (*)(int*, int);
using cuDeviceGetName_t = int (*)(char*, int, int);
using cuDeviceGetAttribute_t = int (*)(int*, int, int);
constexpr int kComputeCapabilityMajor = 75, kComputeCapabilityMinor = 76;

}  // namespace

std::string GpuDevice::arch() const { return fmt::format("sm_{}{}", compute_major, compute_minor); }

DriverStatus probe_driver(const std::string& library) {
  DriverStatus s;
  void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* why = dlerror();
    s.message = fmt::format("no CUDA driver: cannot load {} ({})", library, why ? why : "unknown error");
    return s;
  }
  auto sym = [&](const char* name) { return dlsym(handle, name); };
  auto init = reinterpret_cast<cuInit_t>(sym("cuInit"));
  auto count = reinterpret_cast<cuDeviceGetCount_t>(sym("cuDeviceGetCount"));
  auto get = reinterpret_cast<cuDeviceGet_t>(sym("cuDeviceGet"));
  auto name = reinterpret_cast<cuDeviceGetName_t>(sym("cuDeviceGetName"));
  auto attribute = reinterpret_cast<cuDeviceGetAttribute_t>(sym("cuDeviceGetAttribute"));
  if (!init || !count || !get || !name || !attribute) {
    s.message = fmt::format("{} lacks the driver API entry points anybit needs", library);
    return s;
  }
  if (int r = init(0); r != 0) {
    s.message = fmt::format("the CUDA driver did not initialize (cuInit returned {}): no usable GPU", r);
    return s;
  }
  int n = 0;
  if (count(&n) != 0 || n == 0) {
    s.message = "the CUDA driver reports no GPU device";
    return s;
  }
  for (int i = 0; i < n; ++i) {
    GpuDevice d;
    int dev = 0;
    get(&dev, i);
    char buffer[256] = {};
    name(buffer, sizeof buffer, dev);
    d.ordinal = i;
    d.name = buffer;
    attribute(&d.compute_major, kComputeCapabilityMajor, dev);
    attribute(&d.compute_minor, kComputeCapabilityMinor, dev);
    attribute(&d.multiprocessors, 16, dev);  // CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT
    s.devices.push_back(d);
  }
  s.available = true;
  return s;  // the handle stays loaded for the process's lifetime
}

const DriverStatus& driver_status() {
  static const DriverStatus status = probe_driver("libcuda.so.1");
  return status;
}

}  // namespace anybit::backend_cuda
