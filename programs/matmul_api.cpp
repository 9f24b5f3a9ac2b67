#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "backend_cuda/cache.h"
#include "backend_cuda/driver.h"
#include "backend_cuda/gpu.h"
#include "backend_cuda/launch.h"
#include "backend_cuda/nvrtc.h"
#include "isa/bitpack.h"
#include "isa/error.h"
#include "passes/pipeline.h"
#include "programs/matmul_api.h"

namespace anybit {

namespace {

struct Compiled {
  vm::Program program;
  backend_cuda::EmittedKernel kernel;
  std::unique_ptr<backend_cuda::SimKernel> sim;  // built on first simulator use
  std::atomic<void*> function{nullptr};           // loaded on first device launch
};

// One compiled kernel per program (its name says format and schedule), parameter bounds and divisibility
// facts for the process (splitk_reduce's name does not say whether the problem is whole tiles).
Compiled& compiled(const vm::Program& program, const backend_cuda::EmitOptions& emit) {
  using Facts = std::map<std::string, std::int64_t>;
  static std::mutex mutex;
  static std::map<std::tuple<std::string, Facts, Facts>, std::unique_ptr<Compiled>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = cache[{program.name, emit.bounds, emit.divisibility}];
  if (!slot) {
    passes::PipelineOptions options;
    options.emit = emit;
    auto lowered = passes::run_pipeline(program, options);
    slot = std::make_unique<Compiled>();
    slot->program = std::move(lowered.program);
    slot->kernel = std::move(lowered.kernel);
  }
  return *slot;
}

backend_cuda::SimKernel& simulator(Compiled& c) {
  static std::mutex build;
  std::lock_guard<std::mutex> lock(build);
  if (!c.sim) c.sim = std::make_unique<backend_cuda::SimKernel>(backend_cuda::SimKernel::build(c.program, c.kernel));
  return *c.sim;
}

backend_cuda::DeviceFunction device_function(Compiled& c) {
  void* f = c.function.load(std::memory_order_acquire);
  if (!f) c.function.store(f = backend_cuda::device_function(c.kernel).handle, std::memory_order_release);
  return {f};
}

void check_pointer(const void* p, const char* name, bool required) {
  if (!p) {
    if (required) throw Error(fmt::format("matmul: {} is null", name));
    return;
  }
  if (reinterpret_cast<std::uintptr_t>(p) % 16 != 0) throw Error(fmt::format("matmul: {} is not 16-byte aligned", name));
}

std::size_t bytes_of(std::int64_t count, isa::DataType t) {
  return isa::packed_bytes(static_cast<std::size_t>(count), t.bits());
}

void check_problem(const MatmulProblem& p) {
  const auto& f = p.format;
  programs::validate(f, p.M, p.N, p.K);
  check_pointer(p.A, "A", true);
  check_pointer(p.packed_weights, "packed_weights", true);
  check_pointer(p.scales, "scales", true);
  check_pointer(p.C, "C", true);
  check_pointer(p.zeros, "zeros", f.zeros != programs::ZeroMode::None);
  if (f.zeros == programs::ZeroMode::None && p.zeros)
    throw Error("matmul: zeros given, but the format has no zero points (ZeroMode::None)");
  check_pointer(p.bias, "bias", f.bias);
  if (!f.bias && p.bias) throw Error("matmul: bias given, but the format has none (set format.bias)");
  check_pointer(p.workspace, "workspace", false);
}

// Where the workspace holds split-K's partial sums and the split activations (matmul_workspace_bytes).
struct WorkspaceParts {
  std::size_t partials = 0, split_offset = 0, split = 0;
};
WorkspaceParts workspace_parts(const programs::QuantFormat& f, const programs::Schedule& s, std::int64_t M, std::int64_t N,
                               std::int64_t K) {
  WorkspaceParts w;
  if (s.split_k > 1) w.partials = static_cast<std::size_t>(s.split_k * M * N) * 4;
  if (programs::splits_activations(f, s)) {
    w.split_offset = (w.partials + 255) / 256 * 256;
    w.split = static_cast<std::size_t>(2 * M * K) * 2;
  }
  return w;
}

// Every buffer of the kernels by parameter name with its size in bytes (P and As: parts of the workspace).
std::map<std::string, std::pair<const void*, std::size_t>> buffers(const MatmulProblem& p, const programs::Schedule& s,
                                                                   void* workspace) {
  const auto& f = p.format;
  const std::int64_t groups = p.K / f.group;
  std::map<std::string, std::pair<const void*, std::size_t>> out;
  out["A"] = {p.A, bytes_of(p.M * p.K, f.activations)};
  out["Wp"] = {p.packed_weights, programs::packed_size(f, p.N, p.K)};
  out["S"] = {p.scales, bytes_of(groups * p.N, f.activations)};
  if (f.zeros != programs::ZeroMode::None)
    out["Z"] = {p.zeros, bytes_of(groups * p.N, f.zeros == programs::ZeroMode::Integer ? f.weights : f.activations)};
  out["C"] = {p.C, bytes_of(p.M * p.N, f.activations)};
  if (f.bias) out["B"] = {p.bias, bytes_of(p.N, f.activations)};
  const WorkspaceParts w = workspace_parts(f, s, p.M, p.N, p.K);
  if (w.partials) out["P"] = {workspace, w.partials};
  if (w.split) out["As"] = {workspace ? static_cast<std::uint8_t*>(workspace) + w.split_offset : nullptr, w.split};
  return out;
}

// The kernels of a schedule, in launch order, for the process: building quant_matmul's program (to learn
// the cached kernel's name) took longer than many of its launches, so the list is kept by everything the
// programs depend on: the format's fields, the schedule and the emitter's parameter bounds.
std::vector<Compiled*> kernels(const MatmulProblem& p, const programs::Schedule& s) {
  using Key = std::tuple<std::string, std::string, int, int, bool, std::string, std::map<std::string, std::int64_t>>;
  static std::mutex mutex;
  static std::map<Key, std::vector<Compiled*>> cache;
  const auto& f = p.format;
  const auto emit = programs::quant_matmul_emit_options(f, s, p.M, p.N, p.K);
  Key key{f.weights.name(), f.activations.name(), f.group, static_cast<int>(f.zeros), f.bias, programs::describe(s), emit.bounds};
  std::lock_guard<std::mutex> lock(mutex);
  auto& out = cache[std::move(key)];
  if (out.empty()) {
    std::vector<Compiled*> built;
    if (programs::splits_activations(f, s)) built.push_back(&compiled(programs::split_activations(f), emit));
    built.push_back(&compiled(programs::quant_matmul(f, s), emit));
    if (s.split_k > 1) built.push_back(&compiled(programs::splitk_reduce(f, s.split_k), emit));
    out = std::move(built);
  }
  return out;
}

std::string sanitize(std::string text) {
  for (char& c : text)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return text;
}

std::optional<programs::Schedule> tuned(const programs::QuantFormat& f, std::int64_t M, std::int64_t N, std::int64_t K,
                                        const backend_cuda::GpuDevice& device) {
  static std::mutex mutex;
  static std::map<std::string, programs::Schedule> seen;
  const auto path = tuned_schedule_path(f, M, N, K, device.arch());
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = seen.find(path.string()); it != seen.end()) return it->second;
  auto stored = load_tuned_schedule(path);  // absent files are looked for again: a later tuning may store one
  if (stored) seen.emplace(path.string(), *stored);
  return stored;
}

programs::Schedule schedule_for(const MatmulProblem& p, bool gpu, const MatmulOptions& o) {
  const auto chosen = [&]() -> programs::Schedule {
    if (o.schedule) {
      programs::validate(*o.schedule);
      return *o.schedule;
    }
    const auto& driver = backend_cuda::driver_status();
    if (gpu && driver.available) {
      const auto& device = driver.devices.front();
      if (auto t = tuned(p.format, p.M, p.N, p.K, device)) return *t;
      return programs::choose_schedule(p.format, p.M, p.N, p.K, {device.arch(), device.multiprocessors});
    }
    return programs::choose_schedule(p.format, p.M, p.N, p.K);
  };
  return programs::with_whole_tiles(chosen(), p.format, p.N, p.K);
}

// Workspace bytes the schedule needs (split-K partials, split activations); anybit::Error when the caller's workspace is smaller.
std::size_t workspace_needed(const MatmulProblem& p, const programs::Schedule& s) {
  const std::size_t need = matmul_workspace_bytes(p.format, s, p.M, p.N, p.K);
  if (p.workspace && p.workspace_bytes < need)
    throw Error(fmt::format("matmul: the workspace holds {} bytes, the schedule {} needs {}", p.workspace_bytes,
                            programs::describe(s), need));
  return need;
}

std::map<std::string, std::int64_t> scalars(const MatmulProblem& p) { return {{"M", p.M}, {"N", p.N}, {"K", p.K}}; }

}  // namespace

std::size_t matmul_workspace_bytes(const programs::QuantFormat& f, const programs::Schedule& s, std::int64_t M, std::int64_t N,
                                   std::int64_t K) {
  const WorkspaceParts w = workspace_parts(f, s, M, N, K);
  return w.split ? w.split_offset + w.split : w.partials;
}

programs::Schedule matmul_schedule(const programs::QuantFormat& f, std::int64_t M, std::int64_t N, std::int64_t K, Device device) {
  MatmulProblem p;
  p.format = f, p.M = M, p.N = N, p.K = K;
  programs::validate(f, M, N, K);
  return schedule_for(p, device.kind != Device::Kind::Sim, {});
}

MatmulResult matmul(const MatmulProblem& p, Device device, const MatmulOptions& options) {
  check_problem(p);
  const auto& driver = backend_cuda::driver_status();
  const bool gpu = device.kind == Device::Kind::Gpu || (device.kind == Device::Kind::Best && driver.available);
  if (device.kind == Device::Kind::Gpu && !driver.available) throw Error(driver.message);
  MatmulResult result;
  result.schedule = schedule_for(p, gpu, options);
  const std::size_t need = workspace_needed(p, result.schedule);
  std::vector<std::uint8_t> own;
  void* workspace = p.workspace;
  if (need && !workspace) {
    own.resize(need);
    workspace = own.data();
  }
  vm::Arguments args;
  for (auto& [name, buffer] : buffers(p, result.schedule, workspace))
    args.buffers[name] = std::span<std::uint8_t>(static_cast<std::uint8_t*>(const_cast<void*>(buffer.first)), buffer.second);
  args.scalars = scalars(p);
  for (Compiled* k : kernels(p, result.schedule)) {
    if (gpu) {
      result.gpu_milliseconds += backend_cuda::run_on_gpu(k->program, k->kernel, args).milliseconds;
      continue;
    }
    const auto c = simulator(*k).launch(args, {options.sim_seed});
    auto& r = result.counters;
    r.global_read_bytes += c.global_read_bytes, r.global_write_bytes += c.global_write_bytes, r.global_sectors += c.global_sectors;
    r.shared_read_bytes += c.shared_read_bytes, r.shared_write_bytes += c.shared_write_bytes, r.mma += c.mma;
    r.ldmatrix += c.ldmatrix, r.cp_async += c.cp_async, r.barriers += c.barriers, r.shuffles += c.shuffles;
    r.memory_instructions += c.memory_instructions, r.arithmetic_instructions += c.arithmetic_instructions;
    r.shared_wavefronts += c.shared_wavefronts, r.shared_ideal_wavefronts += c.shared_ideal_wavefronts;
  }
  result.ran_on_gpu = gpu;
  result.note = gpu ? driver.devices.front().name
                    : device.kind == Device::Kind::Best ? "no GPU (" + driver.message + "); ran on the CPU simulator"
                                                        : "CPU simulator";
  return result;
}

MatmulResult matmul_device(const MatmulProblem& p, const MatmulOptions& options) {
  check_problem(p);
  const auto& driver = backend_cuda::driver_status();
  if (!driver.available) throw Error(driver.message);
  MatmulResult result;
  result.ran_on_gpu = true;
  result.note = driver.devices.front().name;
  result.schedule = schedule_for(p, true, options);
  const std::size_t need = workspace_needed(p, result.schedule);
  std::uint64_t own = 0;
  std::map<std::string, std::uint64_t> pointers;
  for (auto& [name, buffer] : buffers(p, result.schedule, p.workspace)) {
    if ((name == "P" || name == "As") && !buffer.first) continue;  // allocated below
    const auto address = reinterpret_cast<std::uint64_t>(buffer.first);
    if (!backend_cuda::is_device_pointer(address))
      throw Error(fmt::format("matmul: {} is not device memory (matmul_device takes CUdeviceptr values)",
                              name == "Wp" ? "packed_weights" : name == "S" ? "scales" : name == "Z" ? "zeros"
                                                              : name == "B" ? "bias" : name == "P" || name == "As" ? "workspace" : name));
    pointers[name] = address;
  }
  if (need && !p.workspace) {
    const WorkspaceParts parts = workspace_parts(p.format, result.schedule, p.M, p.N, p.K);
    own = backend_cuda::gpu_alloc(need);
    if (parts.partials) pointers["P"] = own;
    if (parts.split) pointers["As"] = own + parts.split_offset;
  }
  try {
    for (Compiled* k : kernels(p, result.schedule))
      backend_cuda::launch_on_device(k->program, k->kernel, device_function(*k), pointers, scalars(p), options.stream);
    if (own) backend_cuda::gpu_synchronize();
  } catch (...) {
    backend_cuda::gpu_free(own);
    throw;
  }
  backend_cuda::gpu_free(own);
  return result;
}

std::filesystem::path tuned_schedule_path(const programs::QuantFormat& f, std::int64_t M, std::int64_t N, std::int64_t K,
                                          const std::string& arch) {
  const std::string zeros = f.zeros == programs::ZeroMode::None ? "none" : f.zeros == programs::ZeroMode::Integer ? "int" : "float";
  return backend_cuda::KernelCache::default_directory() / "tuning" /
         sanitize(fmt::format("{}_{}_g{}_z{}_b{}_M{}_N{}_K{}_{}", f.weights.name(), f.activations.name(), f.group, zeros,
                              f.bias ? 1 : 0, M, N, K, arch)) += ".txt";
}

programs::Schedule parse_schedule(const std::string& text) {
  programs::Schedule s;
  char w = 0, m = 0, st = 0, k = 0;
  int consumed = 0;
  const bool parsed = std::sscanf(text.c_str(), " %c%d %c%d %c%d %c%d %n", &w, &s.warps, &m, &s.m_tiles, &st, &s.stages, &k,
                                  &s.split_k, &consumed) == 8 &&
                      w == 'w' && m == 'm' && st == 's' && k == 'k';
  // Optional words after the four numbers, in this order: "wa" or "sd", then "u<unroll>", then "whole".
  std::istringstream rest(parsed ? text.substr(static_cast<std::size_t>(consumed)) : std::string());
  std::vector<std::string> words;
  for (std::string word; rest >> word;) words.push_back(word);
  std::size_t at = 0;
  if (at < words.size() && words[at] == "wa") s.weights_on_a = true, ++at;
  if (at < words.size() && words[at] == "sd") s.shared_decode = true, ++at;
  if (at < words.size() && words[at].size() >= 2 && words[at].size() <= 3 && words[at][0] == 'u' &&
      words[at].find_first_not_of("0123456789", 1) == std::string::npos)
    s.unroll = std::stoi(words[at++].substr(1));
  if (at < words.size() && words[at] == "whole") s.whole_tiles = true, ++at;
  if (!parsed || at != words.size())
    throw Error(fmt::format("schedule '{}' is not of the form 'w4 m1 s3 k1' (warps, M tiles, stages, split-K; then ' wa' "
                            "for weights on the mma A side or ' sd' for weights decoded once into shared memory, ' u2' for two chunks per iteration, ' whole' for whole tiles)", text));
  programs::validate(s);
  return s;
}

std::optional<programs::Schedule> load_tuned_schedule(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::nullopt;
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) throw Error(fmt::format("tuned schedule '{}' cannot be read", path.string()));
  try {
    return parse_schedule(line);
  } catch (const Error& e) {
    throw Error(fmt::format("tuned schedule '{}': {} (delete the file to tune again)", path.string(), e.what()));
  }
}

void store_tuned_schedule(const std::filesystem::path& path, const programs::Schedule& s) {
  std::filesystem::create_directories(path.parent_path());
  // Written beside and renamed into place: a reader sees the old choice or the new one, never a part.
  const auto temp = path.string() + fmt::format(".tmp{}", static_cast<long>(::getpid()));
  {
    std::ofstream out(temp, std::ios::trunc);
    out << programs::describe(s) << "\n";
    if (!out) throw Error(fmt::format("cannot write '{}'", temp));
  }
  std::filesystem::rename(temp, path);
}

std::vector<programs::Schedule> tuning_candidates(const programs::QuantFormat& f, std::int64_t M, std::int64_t K,
                                                  const std::string& arch) {
  const std::int64_t limit = backend_cuda::shared_memory_limit(arch);
  std::vector<programs::Schedule> out;
  for (bool on_a : {false, true})
    for (int warps : {2, 4, 8})
      for (int m_tiles : {1, 2})
        for (int stages : {3, 4, 6})
          for (int split : {1, 2, 4, 8, 16})
            for (int unroll : {1, 2, 4}) {
              if (on_a && M > 8) continue;
              if (m_tiles == 2 && M <= 16) continue;
              // at least two iterations per slice
              if ((split > 1 || unroll > 1) && K / (16 * programs::chunk_steps(f)) < 2 * split * unroll) continue;
              programs::Schedule s{warps, m_tiles, stages, split, on_a, unroll};
              // e.g. 8 warps x 6 stages of 8-bit weights: 145 KB, more than sm_86 and sm_89 allow (99 KB)
              if (programs::shared_bytes(f, s) > limit) continue;
              out.push_back(s);
              // The same with the weights decoded once into shared memory, where the batch fills its rows.
              s.shared_decode = true;
              if (!on_a && warps <= 4 && M >= 16LL * m_tiles * warps && programs::shared_bytes(f, s) <= limit) out.push_back(s);
            }
  return out;
}

TuneResult tune_matmul(const programs::QuantFormat& f, std::int64_t M, std::int64_t N, std::int64_t K, int repeats) {
  programs::validate(f, M, N, K);
  const auto& driver = backend_cuda::driver_status();
  if (!driver.available) throw Error("tuning needs a GPU: " + driver.message);
  if (repeats < 1) throw Error(fmt::format("tuning: repeats must be at least 1, not {}", repeats));
  const auto& device = driver.devices.front();
  // Random device buffers of the problem's sizes (the codes' values do not change these kernels' time; the
  // fill keeps float buffers finite). The weights rotate through copies that together exceed 100 MB, twice
  // the largest L2 (at most 64 copies), so that every candidate streams them from DRAM as a real call does.
  MatmulProblem p;
  p.format = f, p.M = M, p.N = N, p.K = K;
  std::vector<std::uint64_t> owned;
  auto device_buffer = [&](std::size_t bytes) {
    const std::uint64_t d = backend_cuda::gpu_alloc(bytes);
    owned.push_back(d);
    std::vector<std::uint8_t> host(bytes);
    for (std::size_t i = 0; i < bytes; ++i) host[i] = static_cast<std::uint8_t>((i * 2654435761u) >> 13) & 0x3b;  // finite codes
    backend_cuda::gpu_copy_to_device(d, host.data(), bytes);
    return reinterpret_cast<void*>(d);
  };
  TuneResult result;
  try {
    const std::int64_t groups = K / f.group;
    p.A = device_buffer(bytes_of(M * K, f.activations));
    const std::size_t packed = programs::packed_size(f, N, K);
    std::vector<void*> weights;
    for (int i = 0, n = backend_cuda::rotation_copies(packed); i < n; ++i)
      weights.push_back(device_buffer(packed));
    p.scales = device_buffer(bytes_of(groups * N, f.activations));
    if (f.zeros != programs::ZeroMode::None)
      p.zeros = device_buffer(bytes_of(groups * N, f.zeros == programs::ZeroMode::Integer ? f.weights : f.activations));
    if (f.bias) p.bias = device_buffer(bytes_of(N, f.activations));
    p.C = device_buffer(bytes_of(M * N, f.activations));
    const auto candidates = tuning_candidates(f, M, K, device.arch());
    float best = INFINITY;
    for (const auto& s : candidates) {
      p.workspace_bytes = matmul_workspace_bytes(f, s, M, N, K);
      p.workspace = p.workspace_bytes ? device_buffer(p.workspace_bytes) : nullptr;
      MatmulOptions options;
      options.schedule = s;
      const float ms = backend_cuda::gpu_time(
                           [&](int i, void* stream) {
                             p.packed_weights = weights[static_cast<std::size_t>(i) % weights.size()];
                             options.stream = stream;
                             matmul_device(p, options);
                           },
                           std::max(static_cast<int>(weights.size()), 8), repeats)
                           .milliseconds;
      result.timings.emplace_back(s, ms);
      if (ms < best) best = ms, result.best = s;
    }
  } catch (...) {
    for (auto d : owned) backend_cuda::gpu_free(d);
    throw;
  }
  for (auto d : owned) backend_cuda::gpu_free(d);
  store_tuned_schedule(tuned_schedule_path(f, M, N, K, device.arch()), result.best);
  return result;
}

}  // namespace anybit

