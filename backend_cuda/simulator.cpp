#include "backend_cuda/simulator.h"

#include <dlfcn.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <cstdlib>
#include <mutex>
#include <random>

#include "backend_cuda/cache.h"
#include "backend_cuda/runtime/anybit_sim_abi.h"
#include "isa/error.h"

#ifndef ANYBIT_HOST_CXX
#define ANYBIT_HOST_CXX "c++"
#endif
#ifndef ANYBIT_SIM_LIBRARY
#error "ANYBIT_SIM_LIBRARY (the path of libanybit_sim.so) must be defined by the build"
#endif

namespace anybit::backend_cuda {

namespace {

using LaunchFn = const char* (*)(const ab::sim::LaunchSpec* spec);

// The kernel's typed call and the shared object's entry point.
std::string glue(const vm::Program& p, const EmittedKernel& k) {
  std::vector<std::string> args;
  int i = 0;
  for (const vm::Param& q : p.params) {
    if (q.kind == vm::ParamKind::Pointer)
      args.push_back(fmt::format("*(ab::u8**)args[{}]", i));
    else
      args.push_back(fmt::format("({})*(const long long*)args[{}]", q.kind == vm::ParamKind::I32 ? "int" : "long long", i));
    ++i;
  }
  return fmt::format(R"CPP(
static void anybit_call(void** args) {{ {}({}); }}

extern "C" const char* ab_sim_run(const ab::sim::LaunchSpec* spec);

extern "C" const char* anybit_sim_launch(const ab::sim::LaunchSpec* in) {{
  ab::sim::LaunchSpec spec = *in;
  spec.kernel = &anybit_call;
  return ab_sim_run(&spec);
}}
)CPP",
                     k.name, fmt::join(args, ", "));
}

std::string run_command(const std::string& command) {
  std::string output;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) throw Error(fmt::format("cannot run '{}'", command));
  char buffer[4096];
  while (std::size_t n = fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  if (pclose(pipe) != 0) throw Error(fmt::format("the simulator's host compile failed ({}):\n{}", command, output));
  return output;
}

}  // namespace

std::string simulator_library() {
  // ANYBIT_SIM_LIBRARY=embedded forces the copy built from the embedded source.
  const char* env = std::getenv("ANYBIT_SIM_LIBRARY");
  const bool embedded = env && std::string(env) == "embedded";
  if (env && *env && !embedded) return env;
  if (!embedded && std::filesystem::exists(ANYBIT_SIM_LIBRARY)) return ANYBIT_SIM_LIBRARY;
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  const std::string key = sha256_hex(simulator_library_source() + simulator_runtime() + runtime_header() + simulator_abi()).substr(0, 16);
  const auto dir = KernelCache::default_directory() / ("simulator-" + key);
  const auto library = dir / "libanybit_sim.so";
  if (std::filesystem::exists(library)) return library.string();
  std::filesystem::create_directories(dir);
  std::ofstream(dir / kRuntimeHeaderName) << runtime_header();
  std::ofstream(dir / "anybit_sim.h") << simulator_runtime();
  std::ofstream(dir / "anybit_sim_abi.h") << simulator_abi();
  std::ofstream(dir / "anybit_sim.cpp") << simulator_library_source();
  std::random_device rd;
  const auto tmp = dir / fmt::format("libanybit_sim.{:08x}.so", rd());
  run_command(fmt::format("{} -std=c++17 -O2 -shared -fPIC -w -I'{}' '{}' -o '{}' -lboost_context", ANYBIT_HOST_CXX,
                          dir.string(), (dir / "anybit_sim.cpp").string(), tmp.string()));
  std::filesystem::rename(tmp, library);
  return library.string();
}

std::string host_compiler_command() {
  return std::string(ANYBIT_HOST_CXX) + " -std=c++17 -O1 -shared -fPIC -ffp-contract=off -fno-strict-aliasing -w";
}

struct SimKernel::Impl {
  vm::Program program;
  EmittedKernel kernel;
  void* handle = nullptr;
  LaunchFn launch = nullptr;
  std::filesystem::path dir;
  ~Impl() {
    if (handle) dlclose(handle);
    std::error_code ec;
    if (!dir.empty()) std::filesystem::remove_all(dir, ec);
  }
};

SimKernel::SimKernel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SimKernel::~SimKernel() = default;
SimKernel::SimKernel(SimKernel&&) noexcept = default;
SimKernel& SimKernel::operator=(SimKernel&&) noexcept = default;

SimKernel SimKernel::build(const vm::Program& program, const EmittedKernel& kernel) {
  auto impl = std::make_unique<Impl>();
  impl->program = program;
  impl->kernel = kernel;
  std::random_device rd;
  impl->dir = std::filesystem::temp_directory_path() / fmt::format("anybit-sim-{}-{:08x}{:08x}", kernel.name, rd(), rd());
  std::filesystem::create_directories(impl->dir);
  std::ofstream(impl->dir / kRuntimeHeaderName) << runtime_header();
  std::ofstream(impl->dir / "anybit_sim_abi.h") << simulator_abi();
  // The kernel exactly as emitted, plus its typed call; the hooks its intrinsics call live in
  // libanybit_sim.so.
  std::ofstream(impl->dir / "kernel.cpp") << "#include \"anybit_sim_abi.h\"\n" << kernel.source << glue(program, kernel);
  const auto so = impl->dir / "kernel.so";
  const std::filesystem::path library = simulator_library();
  run_command(fmt::format("{} -I'{}' '{}' -o '{}' '{}' -Wl,-rpath,'{}'", host_compiler_command(), impl->dir.string(),
                          (impl->dir / "kernel.cpp").string(), so.string(), library.string(),
                          library.parent_path().string()));
  impl->handle = dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!impl->handle) throw Error(fmt::format("cannot load the simulated kernel: {}", dlerror()));
  impl->launch = reinterpret_cast<LaunchFn>(dlsym(impl->handle, "anybit_sim_launch"));
  if (!impl->launch) throw Error("the simulated kernel has no anybit_sim_launch");
  return SimKernel(std::move(impl));
}

SimCounters SimKernel::launch(const vm::Arguments& args, const SimOptions& options) const {
  const vm::Program& p = impl_->program;
  std::vector<void*> argv;
  std::vector<long long> scalars(p.params.size());
  std::vector<unsigned char*> pointers(p.params.size());
  std::vector<ab::sim::Buffer> buffers;
  for (std::size_t i = 0; i < p.params.size(); ++i) {
    const vm::Param& q = p.params[i];
    if (q.kind == vm::ParamKind::Pointer) {
      auto it = args.buffers.find(q.name);
      if (it == args.buffers.end()) throw Error(fmt::format("no buffer given for pointer parameter '{}'", q.name));
      pointers[i] = it->second.data();
      argv.push_back(&pointers[i]);
      buffers.push_back({it->second.data(), it->second.size(), q.name.c_str()});
    } else {
      auto it = args.scalars.find(q.name);
      if (it == args.scalars.end()) throw Error(fmt::format("no value given for parameter '{}'", q.name));
      scalars[i] = it->second;
      argv.push_back(&scalars[i]);
    }
  }
  std::vector<const char*> instructions;
  for (const auto& s : impl_->kernel.instructions) instructions.push_back(s.c_str());
  const auto grid = vm::grid_size(p, args.scalars);
  check_grid_limits(p.name, grid);
  check_param_assumptions(impl_->kernel, args.scalars);
  ab::sim::Counters counters{};
  ab::sim::LaunchSpec spec{nullptr,
                           argv.data(),
                           impl_->kernel.threads,
                           {grid[0], grid[1], grid[2]},
                           static_cast<unsigned long long>(impl_->kernel.shared_bytes),
                           buffers.data(),
                           static_cast<int>(buffers.size()),
                           instructions.data(),
                           static_cast<int>(instructions.size()),
                           options.seed,
                           &counters};
  if (const char* error = impl_->launch(&spec))
    throw Error(fmt::format("kernel '{}' on the simulator: {}", p.name, error));
  SimCounters out;
  out.global_read_bytes = counters.global_read_bytes;
  out.global_write_bytes = counters.global_write_bytes;
  out.global_sectors = counters.global_sectors;
  out.shared_read_bytes = counters.shared_read_bytes;
  out.shared_write_bytes = counters.shared_write_bytes;
  out.mma = counters.mma;
  out.ldmatrix = counters.ldmatrix;
  out.cp_async = counters.cp_async;
  out.barriers = counters.barriers;
  out.shuffles = counters.shuffles;
  out.memory_instructions = counters.memory_instructions;
  out.shared_wavefronts = counters.shared_wavefronts;
  out.shared_ideal_wavefronts = counters.shared_ideal_wavefronts;
  out.arithmetic_instructions = counters.arithmetic_instructions;
  return out;
}

}  // namespace anybit::backend_cuda
