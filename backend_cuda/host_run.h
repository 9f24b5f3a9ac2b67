// Runs an emitted kernel on the CPU: the exact CUDA source, compiled by the host C++ compiler recorded at
// configure time against the runtime header's CPU bodies, executed one thread after another.
//
// Sequential execution is exact only for kernels whose threads never meet: no sync_threads, async copies,
// mma, ldmatrix or shuffles. Such a kernel raises anybit::Error naming the intrinsic, and belongs to the
// simulator (one fiber per thread), which builds on this loader.
#pragma once

#include <array>
#include <memory>
#include <string>

#include "backend_cuda/emit.h"
#include "vm/interpreter.h"

namespace anybit::backend_cuda {

class HostKernel {
 public:
  // Compiles and loads; anybit::Error with the compiler's output on failure.
  static HostKernel build(const vm::Program& program, const EmittedKernel& kernel);
  ~HostKernel();
  HostKernel(HostKernel&&) noexcept;
  HostKernel& operator=(HostKernel&&) noexcept;

  // Runs every thread of every block of the grid (evaluated from the scalar arguments).
  void launch(const vm::Arguments& args) const;

 private:
  struct Impl;
  explicit HostKernel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The host compiler and flags used for kernels ("c++ -O1 ...").
std::string host_compiler_command();

}  // namespace anybit::backend_cuda
