// The drop-in quantized matmul call (C++). The C entry points for FFI are in programs/anybit.h.
//
//   anybit::MatmulProblem p{format, M, N, K, A, packed_weights, scales, zeros, C, bias};
//   anybit::matmul(p, anybit::Device::best());     // host buffers: the GPU (copied) or the CPU simulator
//   anybit::matmul_device(p);                      // CUdeviceptr values on device 0, nothing copied
//
// Every buffer must be 16-byte aligned. Each (format, schedule) kernel is compiled once per process (and
// cached on disk for the GPU). The schedule is, in order: MatmulOptions::schedule, a schedule stored by
// tune_matmul for this exact problem and GPU, or programs::choose_schedule.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "backend_cuda/simulator.h"
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
  const void* packed_weights = nullptr;  // programs::pack_weights of the N x K codes (finite weights only)
  const void* scales = nullptr;          // K/g x N activation codes
  const void* zeros = nullptr;           // K/g x N codes (weight format or activation type); null without zeros
  void* C = nullptr;                     // M x N activation codes, written
  const void* bias = nullptr;            // N activation codes when format.bias, else null
  // Split-K partial sums and split activations (matmul_workspace_bytes); null: the call allocates it
  // (matmul_device then waits for the kernels before returning, to free it).
  void* workspace = nullptr;
  std::size_t workspace_bytes = 0;
};

struct MatmulOptions {
  std::optional<programs::Schedule> schedule;  // overrides the tuned or heuristic choice
  void* stream = nullptr;                      // CUstream for matmul_device; null: the default stream
  std::uint64_t sim_seed = 1;                  // thread order on the simulator
};

struct MatmulResult {
  bool ran_on_gpu = false;
  std::string note;  // the GPU's name, or why the simulator ran
  programs::Schedule schedule;
  float gpu_milliseconds = 0;        // host-buffer GPU runs: the kernels' CUDA-event time
  backend_cuda::SimCounters counters;  // simulator runs: summed over the kernels
};

// anybit::Error naming the argument for null or misaligned pointers, zeros given or missing against the
// format, unsupported formats, shapes or group sizes, a workspace too small, and an explicit GPU request
// without a GPU.
MatmulResult matmul(const MatmulProblem& problem, Device device = Device::best(), const MatmulOptions& options = {});

// The same on device memory of GPU 0 (every pointer a CUdeviceptr cast to a pointer); asynchronous on
// options.stream unless the call allocates the workspace. anybit::Error when there is no GPU or a pointer
// is not device memory.
MatmulResult matmul_device(const MatmulProblem& problem, const MatmulOptions& options = {});

// The schedule a call on `device` would use, and the workspace bytes it needs: split-K's f32 partial sums
// (split x M x N), then, 256-byte aligned, the bf16 A_hi and A_lo of programs::splits_activations (2 x M x
// K); 0 for neither.
programs::Schedule matmul_schedule(const programs::QuantFormat& f, std::int64_t M, std::int64_t N, std::int64_t K,
                                   Device device = Device::best());
std::size_t matmul_workspace_bytes(const programs::QuantFormat& f, const programs::Schedule& s, std::int64_t M, std::int64_t N,
                                   std::int64_t K);

// GPU only: times every candidate schedule for this problem on GPU 0 (median of `repeats` runs each, after a
// warm-up) and stores the fastest in the cache directory, where later calls find it.
struct TuneResult {
  programs::Schedule best;
  std::vector<std::pair<programs::Schedule, float>> timings;  // milliseconds per candidate
};
TuneResult tune_matmul(const programs::QuantFormat& f, std::int64_t M, std::int64_t N, std::int64_t K, int repeats = 20);
// The schedules tune_matmul times on `arch`: warps x M tiles x stages x split-K x unroll (weights on A for
// M <= 8; split and unroll keep two iterations per slice), leaving out those whose shared memory exceeds the
// architecture's per-block limit.
std::vector<programs::Schedule> tuning_candidates(const programs::QuantFormat& f, std::int64_t M, std::int64_t K,
                                                  const std::string& arch);

// Where tune_matmul stores its choice for a problem on an architecture (a small text file).
std::filesystem::path tuned_schedule_path(const programs::QuantFormat& f, std::int64_t M, std::int64_t N, std::int64_t K,
                                          const std::string& arch);
// The stored choice, if any; anybit::Error for an unreadable or malformed file, naming it.
std::optional<programs::Schedule> load_tuned_schedule(const std::filesystem::path& path);
void store_tuned_schedule(const std::filesystem::path& path, const programs::Schedule& s);
// "w4 m1 s3 k2" (optionally " wa", " u2", " whole") back to a schedule (anybit::Error naming the text otherwise).
programs::Schedule parse_schedule(const std::string& text);

}  // namespace anybit
