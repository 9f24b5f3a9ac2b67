// CUDA C++ emission: a verified program with concrete layouts becomes one readable __global__ function
// that calls the runtime header's vocabulary (backend_cuda/runtime/anybit_runtime.cuh), with a
// provenance comment (// vm: ...) before the code of every instruction.
//
// The kernel runs warps * 32 threads per block over the program's grid; its dynamic shared memory is the
// verifier's plan (bytes given in EmittedKernel). Pointer arguments must be 16-byte aligned.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "passes/vectorize.h"
#include "vm/program.h"

namespace anybit::backend_cuda {

struct EmitOptions {
  // Powers of two that divide integer parameters (e.g. {"K", 64}); more vectorization when known. Every
  // launch checks the arguments against them (check_param_assumptions).
  std::map<std::string, std::int64_t> divisibility;
  // Upper bounds of integer parameters (e.g. {"K", 8192}) the kernel may assume. With them the range
  // analysis proves more index arithmetic fits 32 bits (a view whose every byte offset fits is addressed
  // with `int` offsets). Every launch checks the arguments against them (check_param_assumptions).
  std::map<std::string, std::int64_t> bounds;
};

struct EmittedKernel {
  std::string name;          // the __global__ function's name (the program's name)
  std::string source;        // complete CUDA C++ translation unit
  int threads = 0;           // per block
  std::int64_t shared_bytes = 0;
  // Instructions lowered through a scalar path where a vector one is planned, one line each
  // ("cast int3 -> f16: per element"), for reports.
  std::vector<std::string> fallbacks;
  // "location: opcode" of each VM instruction, indexed by the kernel's AB_AT markers.
  std::vector<std::string> instructions;
  // EmitOptions::bounds the kernel was compiled under: launches with larger arguments are refused.
  std::map<std::string, std::int64_t> bounds;
  // EmitOptions::divisibility facts about its parameters: launches with arguments they do not divide are
  // refused (a vector access or an unmasked tile may rely on them).
  std::map<std::string, std::int64_t> divisibility;
};

// anybit::Error when the program uses something this backend cannot lower yet, naming the instruction.
EmittedKernel emit_cuda(const vm::Program& program, const EmitOptions& options = {});

// CUDA's grid limits (x < 2^31, y and z < 2^16), which emitted index arithmetic relies on: every launch,
// on the GPU or the simulator, checks them first (an empty grid launches nothing).
void check_grid_limits(const std::string& kernel, const std::array<std::int64_t, 3>& grid);

// anybit::Error naming the parameter when an argument exceeds a bound the kernel was compiled under, or is
// not a multiple of what its divisibility facts promised.
void check_param_assumptions(const EmittedKernel& kernel, const std::map<std::string, std::int64_t>& scalars);

// The runtime header's text and its include name.
const std::string& runtime_header();
inline constexpr const char* kRuntimeHeaderName = "anybit_runtime.cuh";

}  // namespace anybit::backend_cuda
