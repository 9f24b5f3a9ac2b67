#include "programs/bench.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <random>
#include <tuple>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "backend_cuda/cache.h"
#include "backend_cuda/cublas.h"
#include "backend_cuda/driver.h"
#include "backend_cuda/gpu.h"
#include "backend_cuda/ptx_stats.h"
#include "backend_cuda/sass.h"
#include "backend_cuda/sass_analysis.h"
#include "backend_cuda/simulator.h"
#include "isa/bitpack.h"
#include "isa/error.h"
#include "passes/pipeline.h"
#include "programs/matmul_api.h"

namespace anybit::bench {

using programs::QuantFormat;
using programs::Schedule;

const std::vector<GpuSpec>& gpu_specs() {
  static const std::vector<GpuSpec> specs = {
      {"A100-80GB", 2.039e12, 312e12, 108, 1.41e9,
       "NVIDIA A100 datasheet: 2,039 GB/s HBM2e, 312 TFLOPS dense FP16 tensor, 1410 MHz boost; issue efficiency 0.5 (measured on an H200)",
       kMeasuredIssueEfficiency},
      {"H100 SXM", 3.35e12, 989e12 / 2, 132, 1.98e9,
       "NVIDIA H100 datasheet: 3.35 TB/s HBM3, 989 TFLOPS dense FP16 tensor (wgmma; mma.sync modeled at half), 1980 MHz boost; "
       "issue efficiency 0.5 (measured on an H200)",
       kMeasuredIssueEfficiency},
      {"H200", 4.8e12, 989e12 / 2, 132, 1.98e9,
       "NVIDIA H200 datasheet: 4.8 TB/s HBM3e, 989 TFLOPS dense FP16 tensor (mma.sync modeled at half), 1980 MHz boost; issue "
       "efficiency 0.5 (Nsight Compute on this kernel: 0.50 instructions per scheduler per cycle)",
       kMeasuredIssueEfficiency},
  };
  return specs;
}

namespace {

std::string format_name(const QuantFormat& f) {
  return fmt::format("{} {} g{}{}", f.weights.name(), f.activations.name(), f.group,
                     f.zeros == programs::ZeroMode::None ? "" : f.zeros == programs::ZeroMode::Integer ? " zint" : " zfloat");
}

int rows_of(const Schedule& s) { return programs::block_rows(s); }

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

struct Compiled {
  backend_cuda::EmittedKernel kernel;
  vm::Program program;
  backend_cuda::CompiledKernel binary;
};

Compiled compile(const QuantFormat& f, const Schedule& s, const std::string& arch, std::int64_t M, std::int64_t N,
                 std::int64_t K) {
  const vm::Program program = programs::quant_matmul(f, s);
  passes::PipelineOptions options;
  options.emit = programs::quant_matmul_emit_options(f, s, M, N, K);
  auto lowered = passes::run_pipeline(program, options);
  backend_cuda::KernelCache cache(backend_cuda::KernelCache::default_directory());
  auto binary = cache.get_or_compile(lowered.kernel, {arch});
  return {lowered.kernel, lowered.program, std::move(binary)};
}

// 32-byte sectors the main kernel (split_k = 1) requests for one block at (M, 16 * warps, K), from the
// simulator, in bytes.
double simulated_block_bytes(const QuantFormat& f, const Schedule& s, std::int64_t M, std::int64_t K) {
  const std::int64_t N = 16 * s.warps;
  Schedule one = s;
  one.split_k = 1;
  one = programs::with_whole_tiles(one, f, N, K);
  static std::map<std::string, std::unique_ptr<backend_cuda::SimKernel>> kernels;
  const auto program = programs::quant_matmul(f, one);
  auto& sim = kernels[program.name];
  if (!sim) {
    passes::PipelineOptions options;
    options.emit.divisibility = programs::quant_matmul_divisibility(f, one);
    const auto lowered = passes::run_pipeline(program, options);
    sim = std::make_unique<backend_cuda::SimKernel>(backend_cuda::SimKernel::build(lowered.program, lowered.kernel));
  }
  const std::int64_t groups = K / f.group;
  const int abits = f.activations.bits();
  std::map<std::string, std::vector<std::uint8_t>> buffers;
  if (programs::splits_activations(f, one)) buffers["As"].assign(static_cast<std::size_t>(2 * M * K) * 2, 0);
  else buffers["A"].assign(isa::packed_bytes(static_cast<std::size_t>(M * K), abits), 0);
  buffers["Wp"].assign(programs::packed_size(f, N, K), 0);
  buffers["S"].assign(isa::packed_bytes(static_cast<std::size_t>(groups * N), abits), 0);
  if (f.zeros != programs::ZeroMode::None)
    buffers["Z"].assign(isa::packed_bytes(static_cast<std::size_t>(groups * N),
                                          f.zeros == programs::ZeroMode::Integer ? f.weights.bits() : abits), 0);
  if (f.bias) buffers["B"].assign(isa::packed_bytes(static_cast<std::size_t>(N), abits), 0);
  buffers["C"].assign(isa::packed_bytes(static_cast<std::size_t>(M * N), abits), 0);
  vm::Arguments args;
  for (auto& [name, bytes] : buffers) args.buffers[name] = std::span<std::uint8_t>(bytes);
  args.scalars = {{"M", M}, {"N", N}, {"K", K}};
  return 32.0 * static_cast<double>(sim->launch(args).global_sectors);
}

}  // namespace

double average_iteration(const backend_cuda::SassProgram& p, const backend_cuda::MainLoop& loop, std::int64_t chunks_per_group) {
  double n = backend_cuda::total(loop.every);
  for (std::size_t b : loop.loop.sometimes) {
    const auto counts = backend_cuda::opcode_counts(p, {b});
    // A scale group's end loads its scales (LDG) and folds the partial sum into the result in f32 (FFMA,
    // FADD, CS2R zeroing the partial); the rest is the pipeline refill, skipped only by a slice's last
    // stages - 1 iterations.
    const bool group_end = backend_cuda::count_prefix(counts, "LDG.") + backend_cuda::count_prefix(counts, "FFMA") +
                               backend_cuda::count_prefix(counts, "FADD") + backend_cuda::count_prefix(counts, "CS2R") > 0;
    n += backend_cuda::total(counts) / (group_end ? static_cast<double>(std::max<std::int64_t>(1, chunks_per_group)) : 1.0);
  }
  return n;
}

namespace {

// Times the kernel (and cuBLAS fp16 on the same shape, once per shape: `cublas_ms` keeps it) on GPU 0 with
// backend_cuda::gpu_time: a CUDA graph of calls whose weights rotate through copies that together exceed
// 100 MB (twice the largest L2), median of 30 replays. Inputs are random, not zeros (zero data can run
// faster than real data): random codes for weights and integer zeros (whatever they decode to, the kernel's
// instruction stream is the same), activations from a normal distribution, scales near 1/64. A random
// pattern of 1 MiB is repeated to fill large buffers, which keeps the host's share of the benchmark small.
void time_on_gpu(const QuantFormat& f, const Schedule& s, Row& r, std::map<std::tuple<std::int64_t, std::int64_t, std::int64_t>, double>& cublas_ms) {
  constexpr int kRepeats = 30;
  constexpr std::size_t kPattern = std::size_t{1} << 20;
  std::vector<std::uint64_t> owned;
  std::mt19937_64 rng(0x5eed);
  auto upload = [&](const std::vector<std::uint8_t>& host) {
    const std::uint64_t d = backend_cuda::gpu_alloc(host.size());
    owned.push_back(d);
    backend_cuda::gpu_copy_to_device(d, host.data(), host.size());
    return d;
  };
  auto repeat_pattern = [](std::vector<std::uint8_t> host, std::size_t pattern_bytes) {
    for (std::size_t i = pattern_bytes; i < host.size(); ++i) host[i] = host[i - pattern_bytes];
    return host;
  };
  auto random_bytes = [&](std::size_t bytes) {
    std::vector<std::uint8_t> host(bytes);
    for (std::size_t i = 0; i < std::min(bytes, kPattern); ++i) host[i] = static_cast<std::uint8_t>(rng());
    return repeat_pattern(std::move(host), kPattern);
  };
  auto values = [&](std::size_t n, double mean, double spread) {
    const isa::DataType t = f.activations;  // 16-bit: a whole number of values per pattern
    std::normal_distribution<double> normal(mean, spread);
    std::vector<std::uint8_t> host(isa::packed_bytes(n, t.bits()));
    for (std::size_t i = 0; i < std::min(n, kPattern / 2); ++i) isa::write_code(host, i, t.bits(), isa::encode(t, normal(rng)));
    return repeat_pattern(std::move(host), kPattern);
  };
  try {
    const std::int64_t M = r.M, N = r.N, K = r.K, groups = K / f.group;
    const auto weights_host = random_bytes(programs::packed_size(f, N, K));
    std::vector<std::uint64_t> weights;
    for (int i = 0, n = backend_cuda::rotation_copies(weights_host.size()); i < n; ++i) weights.push_back(upload(weights_host));
    MatmulProblem p;
    p.format = f, p.M = M, p.N = N, p.K = K;
    auto ptr = [](std::uint64_t d) { return reinterpret_cast<void*>(d); };
    const std::uint64_t A = upload(values(static_cast<std::size_t>(M * K), 0, 1));
    const std::uint64_t C = upload(values(static_cast<std::size_t>(M * N), 0, 1));
    p.A = ptr(A), p.C = ptr(C);
    p.scales = ptr(upload(values(static_cast<std::size_t>(groups * N), 1.0 / 64, 1.0 / 256)));
    if (f.zeros == programs::ZeroMode::Integer)
      p.zeros = ptr(upload(random_bytes(isa::packed_bytes(static_cast<std::size_t>(groups * N), f.weights.bits()))));
    if (f.zeros == programs::ZeroMode::Float) p.zeros = ptr(upload(values(static_cast<std::size_t>(groups * N), 0, 1)));
    if (f.bias) p.bias = ptr(upload(values(static_cast<std::size_t>(N), 0, 1)));
    p.workspace_bytes = matmul_workspace_bytes(f, s, M, N, K);
    if (p.workspace_bytes) p.workspace = ptr(upload(std::vector<std::uint8_t>(p.workspace_bytes, 0)));
    MatmulOptions options;
    options.schedule = s;
    const int launches = std::max(static_cast<int>(weights.size()), 16);
    const auto t = backend_cuda::gpu_time(
        [&](int i, void* stream) {
          p.packed_weights = ptr(weights[static_cast<std::size_t>(i) % weights.size()]);
          options.stream = stream;
          matmul_device(p, options);
        },
        launches, kRepeats);
    r.measured_ms = t.milliseconds, r.measured_min_ms = t.min_milliseconds, r.measured_max_ms = t.max_milliseconds;
    r.timing = t.graph ? "graph" : "stream";
    r.device = backend_cuda::driver_status().devices.front().name;
    const auto shape = std::tuple{M, N, K};
    if (f.activations == isa::DataType::f16() && backend_cuda::cublas_available() && !cublas_ms.count(shape)) {
      const auto dense_host = values(static_cast<std::size_t>(N * K), 0, 0.05);
      std::vector<std::uint64_t> dense;
      for (int i = 0, n = backend_cuda::rotation_copies(dense_host.size()); i < n; ++i) dense.push_back(upload(dense_host));
      cublas_ms[shape] = backend_cuda::gpu_time(
                             [&](int i, void* stream) {
                               backend_cuda::cublas_hgemm_nt(A, dense[static_cast<std::size_t>(i) % dense.size()], C,
                                                             static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), stream);
                             },
                             std::max(static_cast<int>(dense.size()), 16), kRepeats)
                             .milliseconds;
    }
    if (f.activations == isa::DataType::f16() && cublas_ms.count(shape)) r.cublas_ms = cublas_ms.at(shape);
  } catch (...) {
    for (auto d : owned) backend_cuda::gpu_free(d);
    throw;
  }
  for (auto d : owned) backend_cuda::gpu_free(d);
}

}  // namespace

double minimum_bytes(const QuantFormat& f, std::int64_t M, std::int64_t N, std::int64_t K, const Schedule& s) {
  const double groups = static_cast<double>(K / f.group), a = f.activations.bits() / 8.0;
  double bytes = static_cast<double>(N) * K * f.weights.bits() / 8 + groups * N * a + static_cast<double>(M) * K * a +
                 static_cast<double>(M) * N * a;
  if (f.zeros == programs::ZeroMode::Integer) bytes += groups * N * f.weights.bits() / 8;
  if (f.zeros == programs::ZeroMode::Float) bytes += groups * N * a;
  if (f.bias) bytes += N * a;
  if (s.split_k > 1) bytes += 2.0 * s.split_k * M * N * 4;  // partials written and read back
  return bytes;
}

Model model(const GpuSpec& gpu, const Traffic& t, double mma_flops_needed, double issue_instructions) {
  Model m;
  m.memory_s = t.dram / gpu.bandwidth;
  m.mma_s = mma_flops_needed / gpu.mma_flops;
  m.issue_s = issue_instructions / (gpu.multiprocessors * 4.0 * gpu.clock * gpu.issue_efficiency);  // 4 schedulers
  m.time_s = std::max({m.memory_s, m.mma_s, m.issue_s});
  m.roofline_s = t.minimum / gpu.bandwidth;
  return m;
}

std::vector<QuantFormat> parse_formats(const std::string& list, isa::DataType activations, int group) {
  std::vector<QuantFormat> out;
  if (list == "all") {
    for (auto t : isa::all_dtypes())
      if (t.bits() <= 8 && !t.is_bool()) out.push_back({t, activations, group, programs::ZeroMode::None});
    return out;
  }
  std::size_t start = 0;
  while (start <= list.size()) {
    const auto end = std::min(list.find(',', start), list.size());
    const auto t = isa::parse_dtype(list.substr(start, end - start));
    out.push_back({t, activations, group, programs::ZeroMode::None});
    programs::validate(out.back(), 1, 16, std::max(group, 16));
    start = end + 1;
  }
  return out;
}

Report run(const Options& o) {
  if (o.formats.empty()) throw Error("bench: no formats given");
  Report report;
  std::map<std::tuple<std::int64_t, std::int64_t, std::int64_t>, double> cublas_ms;  // per shape, with --gpu
  const bool have_sass = backend_cuda::find_disassembler().has_value();
  const std::size_t total = o.formats.size() * o.Ms.size() * o.NKs.size();
  std::size_t done = 0;
  for (const auto& [N, K] : o.NKs)
    for (const auto& f : o.formats)
      for (const auto M : o.Ms) {
        programs::validate(f, M, N, K);
        if (o.progress) o.progress(done, total, fmt::format("{} M={} {}x{}", format_name(f), M, N, K));
        Row r;
        r.format = format_name(f);
        r.M = M, r.N = N, r.K = K, r.arch = o.arch;
        r.schedule = programs::choose_schedule(f, M, N, K, {o.arch, 0});
        const Schedule& s = r.schedule;
        const auto c = compile(f, s, o.arch, M, N, K);
        r.registers = c.binary.stats.registers;
        r.spill_bytes = c.binary.stats.spill_store_bytes + c.binary.stats.spill_load_bytes;
        r.shared_bytes = static_cast<int>(c.kernel.shared_bytes);
        for (const auto& sm : {backend_cuda::a100_limits(), backend_cuda::h100_limits()}) {
          const auto occ = backend_cuda::occupancy(sm, c.kernel.threads, std::max(r.registers, 1), c.kernel.shared_bytes);
          r.occupancy[sm.name] = {occ.blocks, occ.warps};
        }
        const std::int64_t chunk = programs::chunk_steps(f), chunks = K / (16 * chunk), rows = rows_of(s);
        double issue = 0;
        if (have_sass) {
          const auto text = backend_cuda::disassemble(c.binary.cubin, *backend_cuda::find_disassembler());
          const auto program = backend_cuda::parse_sass(text);
          const auto all = backend_cuda::opcode_counts(program, [&] {
            std::vector<std::size_t> b(program.blocks.size());
            for (std::size_t i = 0; i < b.size(); ++i) b[i] = i;
            return b;
          }());
          for (const auto& [op, n] : all)
            if (op.starts_with("LDGSTS")) (op.find(".128") != std::string::npos ? r.copies_16 : r.copies_narrow) += n;
          if (const auto loop = backend_cuda::main_loop(program)) {
            r.sass = true;
            r.loop_every = backend_cuda::total(loop->every);
            r.loop_sometimes = backend_cuda::total(loop->sometimes);
            for (const char* p : {"HMMA", "LDSM", "LDS.", "BAR", "LDGSTS", "LDG.", "STL", "LDL"})
              r.loop_counts[p] = backend_cuda::count_prefix(loop->every, p) + backend_cuda::count_prefix(loop->sometimes, p);
            // A warp multiplies 16 columns x 16c rows of weights per chunk, u chunks per iteration.
            r.slots_per_1024 = r.loop_every * 1024.0 / (256.0 * static_cast<double>(chunk * s.unroll));
            r.loop_average = average_iteration(program, *loop, f.group / (16 * chunk));
            issue = r.loop_average * static_cast<double>(N / 16) * static_cast<double>(ceil_div(M, rows)) *
                    static_cast<double>(ceil_div(chunks, s.unroll));
          }
        } else {
          const auto ptx = backend_cuda::ptx_opcode_counts(c.binary.ptx);
          for (const auto& [op, n] : ptx)
            if (op.starts_with("cp.async.cg")) r.copies_16 += n;
            else if (op.starts_with("cp.async.ca")) r.copies_narrow += n;
        }
        // Traffic: one block's sectors at two K, extrapolated over blocks and chunks; the split-K partials
        // (written as f32 instead of C, then read and reduced) added analytically.
        // K1 holds whole groups and whole iterations (u chunks), so both runs have the same fixed part.
        const std::int64_t iteration_k = 16 * chunk * s.unroll, k1 = 2 * f.group * std::max<std::int64_t>(1, 64 / f.group),
                           Ms = std::min<std::int64_t>(M, rows), K1 = std::lcm(k1, iteration_k),
                           K2 = 2 * K1;
        const double b1 = simulated_block_bytes(f, s, Ms, K1), b2 = simulated_block_bytes(f, s, Ms, K2);
        const double c1 = static_cast<double>(K1 / (16 * chunk)), c2 = static_cast<double>(K2 / (16 * chunk));
        const double per_chunk = (b2 - b1) / (c2 - c1), fixed = b1 - per_chunk * c1;
        const double blocks = static_cast<double>(ceil_div(N, 16 * s.warps) * ceil_div(M, rows));
        const double a = f.activations.bits() / 8.0;
        r.traffic.minimum = minimum_bytes(f, M, N, K, s);
        r.traffic.kernel = blocks * (s.split_k * fixed + per_chunk * static_cast<double>(chunks));
        if (s.split_k > 1) {  // partials are f32 where the measured block wrote C; the reduction reads them, writes C
          const double mn = static_cast<double>(M) * N;
          r.traffic.kernel += s.split_k * mn * (4 - a) + s.split_k * mn * 4 + mn * a + (f.bias ? N * a : 0.0);
        }
        // Split activations: split_activations reads A and writes A_hi and A_lo (bf16), which the blocks read
        // instead of A, and every product is two mma.
        const bool split_a = programs::splits_activations(f, s);
        if (split_a) r.traffic.kernel += static_cast<double>(M) * K * (2.0 + 4.0);
        const double a_bytes = static_cast<double>(M) * K * (split_a ? 4.0 : a), blocks_n = static_cast<double>(ceil_div(N, 16 * s.warps));
        r.traffic.dram = r.traffic.kernel - (a_bytes <= 40e6 ? (blocks_n - 1) * a_bytes : 0.0);
        const double flops = (split_a ? 4.0 : 2.0) * static_cast<double>(ceil_div(M, rows) * rows) * N * K;
        for (const auto& gpu : gpu_specs()) {
          Model m = model(gpu, r.traffic, flops, issue);
          m.fp16_s = (static_cast<double>(N) * K * 2 + M * K * 2.0 + M * N * 2.0) / gpu.bandwidth;
          r.models[gpu.name] = m;
        }
        if (o.gpu) time_on_gpu(f, s, r, cublas_ms);
        report.rows.push_back(std::move(r));
        ++done;
      }
  if (o.progress) o.progress(done, total, "budgets");
  // Budget 1: zero spills and 16-byte weight copies for every format on sm_80 and sm_90 (each schedule used).
  {
    std::vector<std::string> bad;
    std::set<std::string> seen;
    for (const auto& f : o.formats)
      for (const auto& r : report.rows) {
        if (r.format != format_name(f)) continue;
        for (const char* arch : {"sm_80", "sm_90"}) {
          const auto key = fmt::format("{} {} {}", r.format, programs::describe(r.schedule), arch);
          if (!seen.insert(key).second) continue;
          const auto c = compile(f, r.schedule, arch, r.M, r.N, r.K);
          const int spills = c.binary.stats.spill_store_bytes + c.binary.stats.spill_load_bytes;
          int narrow = 0;
          for (const auto& [op, n] : backend_cuda::ptx_opcode_counts(c.binary.ptx))
            if (op.starts_with("cp.async.ca")) narrow += n;
          if (spills || narrow) bad.push_back(fmt::format("{} ({} spilled bytes, {} narrow copies)", key, spills, narrow));
        }
      }
    report.budgets.push_back({"zero spills and 16-byte weight copies, every format, sm_80 and sm_90", bad.empty(),
                              bad.empty() ? fmt::format("{} kernels checked", seen.size()) : fmt::format("{}", fmt::join(bad, "; "))});
  }
  // Budget 2: main-loop issue slots per 1024 weights at M <= 16: 4 bits at most 90 on sm_80, other widths
  // at most twice the 4-bit count.
  {
    double int4 = -1;
    for (const auto& r : report.rows)
      if (r.M <= 16 && r.sass && r.format.starts_with("int4 ") && r.arch == "sm_80") int4 = std::max(int4, r.slots_per_1024);
    if (int4 < 0) {
      report.budgets.push_back({"main loop <= 90 issue slots per 1024 weights (int4, M <= 16, sm_80)", false,
                                have_sass ? "no int4 row with M <= 16 on sm_80 in this run" : "no SASS (nvdisasm not installed)"});
    } else {
      report.budgets.push_back({"main loop <= 90 issue slots per 1024 weights (int4, M <= 16, sm_80)", int4 <= 90,
                                fmt::format("{:.1f} slots per 1024 weights", int4)});
      std::vector<std::string> over;
      for (const auto& r : report.rows)
        if (r.M <= 16 && r.sass && r.slots_per_1024 > 2 * int4) over.push_back(fmt::format("{} M={} {:.1f}", r.format, r.M, r.slots_per_1024));
      report.budgets.push_back({"other widths at most twice the 4-bit slots (M <= 16)", over.empty(),
                                over.empty() ? fmt::format("limit {:.1f}", 2 * int4) : fmt::format("{}", fmt::join(over, "; "))});
    }
  }
  // Budget 3: modeled time within 1.15x of the HBM roofline at M <= 16 on H100, every format.
  {
    std::vector<std::string> over;
    double worst = 0;
    for (const auto& r : report.rows) {
      if (r.M > 16) continue;
      const auto& m = r.models.at("H100 SXM");
      const double ratio = m.time_s / m.roofline_s;
      worst = std::max(worst, ratio);
      if (ratio > 1.15) over.push_back(fmt::format("{} M={} {}x{}: {:.2f}x", r.format, r.M, r.N, r.K, ratio));
    }
    report.budgets.push_back({"modeled time <= 1.15x the HBM roofline (M <= 16, H100)", over.empty(),
                              over.empty() ? fmt::format("worst {:.2f}x", worst) : fmt::format("{}", fmt::join(over, "; "))});
  }
  if (o.progress) o.progress(total, total, "done");
  return report;
}

bool Report::passed() const {
  return std::all_of(budgets.begin(), budgets.end(), [](const Budget& b) { return b.pass; });
}

std::string markdown(const Report& r) {
  std::string out = "# anybit benchmark report\n\n";
  out += "Times and speedups are **modeled** (max of memory, mma and issue time; issue at the 0.5 instructions per "
         "scheduler per cycle measured on an H200) unless a column says measured; "
         "traffic is 32-byte sectors requested, from the simulator, extrapolated by the schedule; DRAM counts A once "
         "(its re-reads by further block columns hit L2) and drives the memory time.\n\n";
  out += "| format | M | N | K | schedule | regs | spill | smem | occ A100 | occ H100 | loop instr | slots/1024 w | HMMA | LDSM | "
         "min MB | requested MB | DRAM MB | min/DRAM | ";
  for (const auto& g : gpu_specs()) out += fmt::format("{} modeled µs | {} roofline µs | ", g.name, g.name);
  out += "speedup vs fp16 (H100, modeled) | measured ms |\n|";
  for (int i = 0; i < 17 + 2 * static_cast<int>(gpu_specs().size()) + 2; ++i) out += "---|";
  out += "\n";
  for (const auto& row : r.rows) {
    out += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {}/{} | {}/{} | {} | {} | {} | {} | {:.2f} | {:.2f} | {:.2f} | {:.3f} | ",
                       row.format, row.M, row.N, row.K, programs::describe(row.schedule), row.registers, row.spill_bytes,
                       row.shared_bytes, row.occupancy.at("A100").first, row.occupancy.at("A100").second,
                       row.occupancy.at("H100").first, row.occupancy.at("H100").second,
                       row.sass ? fmt::format("{} (+{}; avg {:.0f})", row.loop_every, row.loop_sometimes, row.loop_average) : "n/a",
                       row.sass ? fmt::format("{:.1f}", row.slots_per_1024) : "n/a", row.sass ? std::to_string(row.loop_counts.at("HMMA")) : "n/a",
                       row.sass ? std::to_string(row.loop_counts.at("LDSM")) : "n/a", row.traffic.minimum / 1e6,
                       row.traffic.kernel / 1e6, row.traffic.dram / 1e6, row.traffic.minimum / row.traffic.dram);
    for (const auto& g : gpu_specs())
      out += fmt::format("{:.2f} | {:.2f} | ", row.models.at(g.name).time_s * 1e6, row.models.at(g.name).roofline_s * 1e6);
    const auto& h = row.models.at("H100 SXM");
    out += fmt::format("{:.2f} | {} |\n", h.fp16_s / h.time_s,
                       row.measured_ms >= 0 ? fmt::format("{:.4f} (cuBLAS fp16 {})", row.measured_ms,
                                                          row.cublas_ms >= 0 ? fmt::format("{:.4f}", row.cublas_ms) : "n/a")
                                            : "-");
  }
  out += "\nloop instr: warp instructions every main-loop iteration issues (+ those in blocks only some iterations take; "
         "avg: an average iteration, the pipeline refill counted every time and a scale group's end once per group, which "
         "with the measured issue efficiency of 0.5 gives the modeled issue time); slots/1024 w: the every-iteration "
         "instructions x 1024 / weights a warp consumes per iteration. occ: blocks/warps per SM.\n\n## Budgets\n\n";
  for (const auto& b : r.budgets) out += fmt::format("- **{}** {}: {}\n", b.pass ? "PASS" : "FAIL", b.name, b.detail);
  bool measured = false;
  for (const auto& row : r.rows) measured = measured || row.measured_ms >= 0;
  if (measured) {
    out += "\n## Measured on the GPU\n\n"
           "Median of 30 CUDA-event replays of a graph of calls (`stream`: calls issued one by one), weights rotated "
           "through more than 100 MB; random finite data. GB/s: the analytic minimum bytes over the measured time. "
           "modeled: this report's model for the GPU of the same name.\n\n"
           "| format | M | N | K | device | µs | spread µs | timing | GB/s | cuBLAS fp16 µs | speedup vs cuBLAS | modeled µs | "
           "measured / modeled |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    for (const auto& row : r.rows) {
      if (row.measured_ms < 0) continue;
      const Model* m = nullptr;
      for (const auto& g : gpu_specs()) {
        const std::string key = g.name.substr(0, 4);  // "A100", "H100", "H200"
        if (row.device.find(key) != std::string::npos) m = &row.models.at(g.name);
      }
      const double us = row.measured_ms * 1e3;
      out += fmt::format("| {} | {} | {} | {} | {} | {:.2f} | {:.2f}–{:.2f} | {} | {:.0f} | {} | {} | {} | {} |\n", row.format,
                         row.M, row.N, row.K, row.device, us, row.measured_min_ms * 1e3, row.measured_max_ms * 1e3,
                         row.timing, row.traffic.minimum / (row.measured_ms * 1e-3) / 1e9,
                         row.cublas_ms > 0 ? fmt::format("{:.2f}", row.cublas_ms * 1e3) : "n/a",
                         row.cublas_ms > 0 ? fmt::format("{:.2f}", row.cublas_ms / row.measured_ms) : "n/a",
                         m ? fmt::format("{:.2f}", m->time_s * 1e6) : "n/a",
                         m ? fmt::format("{:.2f}", us / (m->time_s * 1e6)) : "n/a");
    }
  }
  out += "\n## GPU figures used by the model\n\n";
  for (const auto& g : gpu_specs()) out += fmt::format("- {}: {}\n", g.name, g.source);
  return out;
}

namespace {
std::string optional_ms(double ms) { return ms >= 0 ? fmt::format("{:.6g}", ms) : "null"; }
}  // namespace

std::string json(const Report& r) {
  std::vector<std::string> rows;
  for (const auto& row : r.rows) {
    std::vector<std::string> models;
    for (const auto& [name, m] : row.models)
      models.push_back(fmt::format("\"{}\": {{\"modeled_s\": {:.6g}, \"memory_s\": {:.6g}, \"mma_s\": {:.6g}, \"issue_s\": {:.6g}, "
                                   "\"roofline_s\": {:.6g}, \"fp16_roofline_s\": {:.6g}}}",
                                   name, m.time_s, m.memory_s, m.mma_s, m.issue_s, m.roofline_s, m.fp16_s));
    std::vector<std::string> counts;
    for (const auto& [op, n] : row.loop_counts) counts.push_back(fmt::format("\"{}\": {}", op, n));
    rows.push_back(fmt::format(
        "{{\"format\": \"{}\", \"M\": {}, \"N\": {}, \"K\": {}, \"schedule\": \"{}\", \"arch\": \"{}\", \"registers\": {}, "
        "\"spill_bytes\": {}, \"shared_bytes\": {}, \"occupancy\": {{\"A100\": [{}, {}], \"H100\": [{}, {}]}}, \"sass\": {}, "
        "\"loop_every\": {}, \"loop_sometimes\": {}, \"loop_average\": {:.2f}, \"loop_counts\": {{{}}}, \"slots_per_1024_weights\": {:.3f}, "
        "\"copies_16_bytes\": {}, \"copies_narrow\": {}, \"minimum_bytes\": {:.0f}, \"kernel_bytes\": {:.0f}, \"dram_bytes\": {:.0f}, \"modeled\": {{{}}}, "
        "\"measured_ms\": {}, \"measured_min_ms\": {}, \"measured_max_ms\": {}, \"timing\": \"{}\", \"device\": \"{}\", "
        "\"cublas_fp16_ms\": {}}}",
        row.format, row.M, row.N, row.K, programs::describe(row.schedule), row.arch, row.registers, row.spill_bytes,
        row.shared_bytes, row.occupancy.at("A100").first, row.occupancy.at("A100").second, row.occupancy.at("H100").first,
        row.occupancy.at("H100").second, row.sass ? "true" : "false", row.loop_every, row.loop_sometimes, row.loop_average,
        fmt::join(counts, ", "), row.slots_per_1024, row.copies_16, row.copies_narrow, row.traffic.minimum, row.traffic.kernel, row.traffic.dram,
        fmt::join(models, ", "), optional_ms(row.measured_ms), optional_ms(row.measured_min_ms), optional_ms(row.measured_max_ms),
        row.timing, row.device, optional_ms(row.cublas_ms)));
  }
  std::vector<std::string> budgets;
  for (const auto& b : r.budgets) {
    std::string detail;
    for (char c : b.detail) detail += c == '"' || c == '\\' ? std::string("\\") + c : std::string(1, c);
    budgets.push_back(fmt::format("{{\"name\": \"{}\", \"pass\": {}, \"detail\": \"{}\"}}", b.name, b.pass ? "true" : "false", detail));
  }
  return fmt::format("{{\"rows\": [{}], \"budgets\": [{}], \"passed\": {}}}\n", fmt::join(rows, ",\n  "), fmt::join(budgets, ",\n  "),
                     r.passed() ? "true" : "false");
}

}  // namespace anybit::bench
