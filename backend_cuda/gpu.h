// Running emitted kernels on a GPU through the driver API (loaded with dlopen by driver.h): module load
// from a cubin built for the device's architecture, the dynamic shared-memory attribute, launch, memory
// allocation and copies, event timing. Without a driver or device every entry point throws anybit::Error
// with the driver probe's message.
#pragma once

#include <functional>

#include <cstdint>
#include <string>
#include <map>
#include <vector>

#include "backend_cuda/emit.h"
#include "vm/interpreter.h"

namespace anybit::backend_cuda {

// The bytes of each kernel argument in signature order: a CUdeviceptr (8 bytes) per pointer parameter,
// an int (4 bytes) per i32 and a long long (8 bytes) per i64. anybit::Error for a missing argument or an
// i32 value out of range.
std::vector<std::vector<std::uint8_t>> marshal_arguments(const vm::Program& program,
                                                         const std::vector<std::uint64_t>& device_pointers,
                                                         const std::map<std::string, std::int64_t>& scalars);

struct GpuRun {
  float milliseconds = 0;  // kernel time measured with CUDA events
  std::string device;
};

// Copies the host buffers to the device, launches the kernel on device 0 and copies every buffer back.
GpuRun run_on_gpu(const vm::Program& program, const EmittedKernel& kernel, const vm::Arguments& args);

// Device memory of device 0 (CUdeviceptr values), for callers that keep their data on the GPU.
std::uint64_t gpu_alloc(std::size_t bytes);
void gpu_free(std::uint64_t pointer) noexcept;
void gpu_copy_to_device(std::uint64_t dst, const void* src, std::size_t bytes);
void gpu_copy_to_host(void* dst, std::uint64_t src, std::size_t bytes);
void gpu_synchronize();
// Whether `pointer` is memory the driver knows (device, managed or registered host memory).
bool is_device_pointer(std::uint64_t pointer);

// How many copies of a `bytes` buffer to rotate through so that a timed loop streams it from DRAM: enough
// to exceed 100 MB together (twice the largest L2), at least 2 and at most 64.
int rotation_copies(std::size_t bytes);

struct GpuTiming {
  float milliseconds = 0;                          // median over the repeats, per launch
  float min_milliseconds = 0, max_milliseconds = 0;  // the spread of those repeats
  int launches = 0;                                // calls of `work` per timed repeat
  bool graph = false;                              // replayed as a CUDA graph (else issued call by call)
};

// Device time of one call of `work(i, stream)`. `launches` consecutive calls (i = 0 .. launches-1, so a
// caller can rotate its inputs through buffers larger than L2) are captured into a CUDA graph on a fresh
// stream and the graph is replayed `repeats` times between CUDA events, after warm-ups outside and inside
// the capture; the figure is the median replay over `launches`. A graph keeps the host's launch cost out
// of kernels of a few microseconds. Where the work refuses capture, the calls are issued one by one on the
// stream instead and `graph` is false.
GpuTiming gpu_time(const std::function<void(int launch, void* stream)>& work, int launches, int repeats);

// Launches the kernel on device 0 with device pointers by parameter name, on `stream` (a CUstream; null:
// the default stream), without copies. The module is loaded once per kernel source and kept for the
// process. With `timed`, waits for the kernel and returns its CUDA-event time in milliseconds; otherwise
// returns as soon as the launch is queued (0).
float launch_on_device(const vm::Program& program, const EmittedKernel& kernel,
                       const std::map<std::string, std::uint64_t>& pointers,
                       const std::map<std::string, std::int64_t>& scalars, void* stream = nullptr, bool timed = false);

// A kernel's function on device 0 (a CUfunction), for callers that launch the same kernel often: finding
// it by source (as launch_on_device does) hashes the whole source on every launch.
struct DeviceFunction {
  void* handle = nullptr;
};
DeviceFunction device_function(const EmittedKernel& kernel);
// launch_on_device with the function device_function returned for `kernel`.
float launch_on_device(const vm::Program& program, const EmittedKernel& kernel, DeviceFunction function,
                       const std::map<std::string, std::uint64_t>& pointers,
                       const std::map<std::string, std::int64_t>& scalars, void* stream = nullptr, bool timed = false);

}  // namespace anybit::backend_cuda
