// The CPU simulator: runs the exact CUDA source the emitter produced, compiled by the host C++ compiler
// recorded at configure time against the runtime header's CPU bodies and the simulator runtime
// (runtime/anybit_sim.h: one fiber per CUDA thread, block barriers, warp collectives, cp.async groups,
// checked memory accesses). Errors name the kernel's VM instruction, the thread and the block.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "backend_cuda/emit.h"
#include "vm/interpreter.h"

namespace anybit::backend_cuda {

struct SimCounters {
  std::uint64_t global_read_bytes = 0, global_write_bytes = 0, global_sectors = 0;
  std::uint64_t shared_read_bytes = 0, shared_write_bytes = 0;
  std::uint64_t mma = 0, ldmatrix = 0, cp_async = 0, barriers = 0, shuffles = 0, memory_instructions = 0;
  // Warp-wide shared requests: wavefronts served, and the minimum they need (excess = bank conflicts).
  std::uint64_t shared_wavefronts = 0, shared_ideal_wavefronts = 0;
  std::uint64_t arithmetic_instructions = 0;  // executed lop3, prmt, shf, packed halves, conversions, float ops
};

struct SimOptions {
  std::uint64_t seed = 1;  // order of the threads between rendezvous
};

class SimKernel {
 public:
  // Compiles and loads the kernel; anybit::Error with the compiler's output on failure.
  static SimKernel build(const vm::Program& program, const EmittedKernel& kernel);
  ~SimKernel();
  SimKernel(SimKernel&&) noexcept;
  SimKernel& operator=(SimKernel&&) noexcept;

  // Runs every block of the grid; anybit::Error on the first failed check.
  SimCounters launch(const vm::Arguments& args, const SimOptions& options = {}) const;

 private:
  struct Impl;
  explicit SimKernel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The host compiler command used for kernels.
std::string host_compiler_command();
// The simulator's ABI header, runtime and library source, as text.
const std::string& simulator_abi();
const std::string& simulator_runtime();
const std::string& simulator_library_source();
// libanybit_sim.so: $ANYBIT_SIM_LIBRARY, else the one built with anybit, else one compiled from the
// embedded source into the kernel cache directory (installed copies of anybit find it that way;
// ANYBIT_SIM_LIBRARY=embedded forces this).
std::string simulator_library();

}  // namespace anybit::backend_cuda
