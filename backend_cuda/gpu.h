// Running emitted kernels on a GPU through the driver API (loaded with dlopen by driver.h): module load
// from a cubin built for the device's architecture, the dynamic shared-memory attribute, launch, memory
// allocation and copies, event timing. Without a driver or device every entry point throws anybit::Error
// with the driver probe's message.
#pragma once

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

}  // namespace anybit::backend_cuda
