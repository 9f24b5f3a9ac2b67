// The drop-in quantized matmul call (C++). The C entry points for FFI are in programs/anybit.h.
//
//   anybit::MatmulProblem p{format, M, N, K, A, packed_weights, scales, zeros, C, bias};
//   anybit::matmul(p, anybit::Device::best());
//
// Buffers are host memory in this version: the simulator runs on them directly and a GPU run copies them
// to the device and back. Every buffer must be 16-byte aligned. The kernel for a format is compiled once per
// process (and cached on disk for the GPU).
#pragma once

#include <cstdint>
#include <string>

#include "programs/quant_matmul.h"

namespace anybit {

struct Device {
  enum class Kind { Gpu, Sim, Best };
  Kind kind = Kind::Best;
  static Device gpu() { return {Kind::Gpu}; }
  static Device sim() { return {Kind::Sim}; }
  static Device best() { return {Kind::Best}; }
};

struct MatmulProblem {
  programs::QuantFormat format;
  std::int64_t M = 0, N = 0, K = 0;
  const void* A = nullptr;               // M x K activation codes, row-major
  const void* packed_weights = nullptr;  // programs::pack_weights of the N x K codes
  const void* scales = nullptr;          // K/g x N activation codes
  const void* zeros = nullptr;           // K/g x N codes (weight format or activation type); null without zeros
  void* C = nullptr;                     // M x N activation codes, written
  const void* bias = nullptr;            // N activation codes when format.bias, else null
};

struct MatmulResult {
  bool ran_on_gpu = false;
  std::string note;  // the GPU's name, or why the simulator ran
};

// anybit::Error naming the argument for null or misaligned pointers, zeros given or missing against the
// format, unsupported formats, shapes or group sizes, and an explicit GPU request without a GPU.
MatmulResult matmul(const MatmulProblem& problem, Device device = Device::best());

}  // namespace anybit
