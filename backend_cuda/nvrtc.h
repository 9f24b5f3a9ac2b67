// NVRTC compilation of emitted kernels to PTX and cubin, with ptxas statistics. Needs no GPU.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend_cuda/emit.h"

namespace anybit::backend_cuda {

struct KernelStats {
  int registers = -1;  // -1: not reported
  int spill_store_bytes = 0, spill_load_bytes = 0;
  int stack_bytes = 0;
  int static_shared_bytes = 0;
  bool reported = false;  // ptxas printed its "Used N registers" line
};

struct CompileOptions {
  std::string arch = "sm_80";  // sm_XX (PTX and cubin) or compute_XX (PTX only)
};

struct CompiledKernel {
  std::string arch;
  std::string ptx;
  std::vector<char> cubin;  // empty for compute_XX
  std::string log;
  KernelStats stats;
};

// anybit::Error on failure, with the numbered source, options and log, and the path of a reproducer
// directory (kernel.cu, the runtime header and the nvcc command line).
CompiledKernel compile(const EmittedKernel& kernel, const CompileOptions& options = {});

// Dynamic shared memory one block may use on an architecture (opt-in maximum), in bytes.
std::int64_t shared_memory_limit(const std::string& arch);

// "13.0" for the linked NVRTC.
std::string nvrtc_version();
// Real architectures this NVRTC can build cubins for, as "sm_XX".
std::vector<std::string> supported_archs();
// ptxas "-v" output to statistics (tested on checked-in logs).
KernelStats parse_ptxas_log(const std::string& log);

}  // namespace anybit::backend_cuda
