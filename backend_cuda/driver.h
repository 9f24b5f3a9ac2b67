// The CUDA driver API, loaded with dlopen("libcuda.so.1") on first use: anybit never links libcuda, so
// it builds, tests and compiles kernels on machines without a GPU or a driver. The launcher (module load,
// launch, memory) builds on this loader.
#pragma once

#include <string>
#include <vector>

namespace anybit::backend_cuda {

struct GpuDevice {
  int ordinal = 0;
  std::string name;
  int compute_major = 0, compute_minor = 0;
  int multiprocessors = 0;
  std::string arch() const;  // "sm_90"
};

struct DriverStatus {
  bool available = false;  // libcuda loaded, cuInit succeeded, at least one device
  std::string message;     // why not, when unavailable
  std::vector<GpuDevice> devices;
};

// Loads the driver once (thread-safe) and lists the devices. Never throws; `message` says what is missing.
const DriverStatus& driver_status();

// Loads a named library the same way; exposed so tests can show the missing-library message.
DriverStatus probe_driver(const std::string& library);

}  // namespace anybit::backend_cuda
