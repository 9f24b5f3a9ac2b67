// Performance evidence without a GPU (`vmc bench`): for each format x M x (N, K), the kernel the library
// would run — its ptxas resources and occupancy, the SASS of its steady-state main loop, its memory traffic
// (simulator counters on small shapes, extrapolated by the schedule) against the analytic minimum — and a
// roofline model on A100, H100 and H200, every modeled figure labelled as such. Budgets from the
// performance issue are checked per row. With a GPU, kernels are also timed (CUDA events).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "backend_cuda/sass_analysis.h"
#include "programs/quant_matmul.h"

namespace anybit::bench {

// Published figures (datasheets); mma.sync is modeled at the dense fp16 tensor peak on A100 and at half
// the wgmma peak on H100/H200 (mma.sync cannot reach wgmma rates). The issue rate is measured: these
// kernels issue on about half the scheduler cycles (docs/measured-h200.md).
struct GpuSpec {
  std::string name;
  double bandwidth = 0;     // bytes/s, HBM
  double mma_flops = 0;     // fp16 tensor FLOP/s reachable by mma.sync (modeled)
  int multiprocessors = 0;
  double clock = 0;         // Hz, boost
  std::string source;
  double issue_efficiency = 1;  // warp instructions issued per scheduler per cycle
};
// Instructions issued per scheduler per cycle by the quantized matmul's main loop, measured with Nsight
// Compute on an H200 (int4, M = 1, 8192 x 8192: 0.50 at 3.8 resident warps per scheduler).
inline constexpr double kMeasuredIssueEfficiency = 0.5;
const std::vector<GpuSpec>& gpu_specs();

struct Traffic {
  double minimum = 0;  // weights + scales + zeros + A + C (+ split-K partials), bytes
  double kernel = 0;   // 32-byte sectors the kernels request, extrapolated from the simulator, bytes
  // kernel less A's re-reads by every block column after the first: A (at most 40 MB, the smallest L2
  // here) stays in L2, so these are not HBM traffic. The memory time uses this.
  double dram = 0;
};
// The analytic minimum for a problem and schedule.
double minimum_bytes(const programs::QuantFormat& f, std::int64_t M, std::int64_t N, std::int64_t K,
                     const programs::Schedule& s);

struct Model {
  double memory_s = 0, mma_s = 0, issue_s = 0, time_s = 0;  // time = max of the three; all modeled
  double roofline_s = 0;                                    // minimum bytes / bandwidth
  double fp16_s = 0;                                        // an fp16 weight matmul at its roofline
};
// issue_instructions: warp instructions the kernels issue in all (an average main-loop iteration x
// iterations), at gpu.issue_efficiency per scheduler per cycle.
Model model(const GpuSpec& gpu, const Traffic& t, double mma_flops_needed, double issue_instructions);

// Instructions an average main-loop iteration issues: the blocks every iteration executes, plus each
// conditional block weighted by how often it runs (a chunk's scale-group end once per `chunks_per_group`
// chunks, which for an iteration of u chunks and its u such blocks is right on average; the pipeline refill
// every iteration).
double average_iteration(const backend_cuda::SassProgram& p, const backend_cuda::MainLoop& loop, std::int64_t chunks_per_group);

struct Row {
  std::string format;  // "int4 f16 g128"
  std::int64_t M = 0, N = 0, K = 0;
  programs::Schedule schedule;
  std::string arch;
  int registers = 0, spill_bytes = 0, shared_bytes = 0;
  std::map<std::string, std::pair<int, int>> occupancy;  // GPU -> (blocks, warps) per SM
  bool sass = false;                                     // SASS figures below are from nvdisasm
  int loop_every = 0, loop_sometimes = 0;                // issued instructions per main-loop iteration
  // An average iteration: every-iteration blocks, the pipeline refill (nearly every iteration) and a
  // scale group's end (once per group) weighted by how often they run. Drives the modeled issue time.
  double loop_average = 0;
  std::map<std::string, int> loop_counts;                // HMMA, LDSM, LDS, BAR, LDGSTS, LDG, STL, LDL per iteration
  double slots_per_1024 = 0;                             // main-loop issue slots per 1024 weights
  int copies_16 = 0, copies_narrow = 0;                  // global->shared copies (whole kernel) by width
  Traffic traffic;
  std::map<std::string, Model> models;  // GPU -> modeled
  // With --gpu: the median time per call (CUDA events over a graph of calls with weights rotated through
  // more than L2), its spread over the repeats, how it was timed, and cuBLAS fp16 on the same shape.
  double measured_ms = -1, measured_min_ms = -1, measured_max_ms = -1, cublas_ms = -1;
  std::string timing;  // "graph" or "stream" (calls issued one by one: launch cost may be included)
  std::string device;
};

struct Budget {
  std::string name;
  bool pass = false;
  std::string detail;
};

struct Options {
  std::vector<programs::QuantFormat> formats;
  std::vector<std::int64_t> Ms = {1, 16, 64, 128};
  std::vector<std::pair<std::int64_t, std::int64_t>> NKs = {{4096, 4096}, {8192, 8192}, {8192, 28672}};
  std::string arch = "sm_80";
  bool gpu = false;
  std::function<void(std::size_t done, std::size_t total, const std::string& what)> progress;
};

struct Report {
  std::vector<Row> rows;
  std::vector<Budget> budgets;
  bool passed() const;
};

Report run(const Options& options);
std::string markdown(const Report& r);
std::string json(const Report& r);
// Speedup over fp16 (measured with --gpu, else modeled on H100) against bits per weight, one line per M.
void write_plot(const Report& r, const std::string& png_path);

// "int4,f6e3m2" or "all" (every 1..8-bit format), each with the activation type and group given.
std::vector<programs::QuantFormat> parse_formats(const std::string& list, isa::DataType activations, int group);

}  // namespace anybit::bench
