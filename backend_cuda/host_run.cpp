#include "backend_cuda/host_run.h"

#include <dlfcn.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "isa/error.h"

#ifndef ANYBIT_HOST_CXX
#define ANYBIT_HOST_CXX "c++"
#endif

namespace anybit::backend_cuda {

namespace {

using LaunchFn = const char* (*)(void** args, int threads, const long long* grid, unsigned char* shared);

// The CPU side of the runtime for sequential execution, appended to the kernel's source.
std::string host_support(const vm::Program& p, const EmittedKernel& k) {
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
#include <stdexcept>
namespace ab {{
thread_local SimThread* ab_sim_current = nullptr;
[[noreturn]] static void needs_simulator(const char* what) {{
  throw std::runtime_error(std::string("the kernel uses ") + what + ", which needs the simulator (threads run one after another here)");
}}
void ab_sim_bar_sync() {{ needs_simulator("sync_threads (bar.sync)"); }}
void ab_sim_cp_async(void*, const void*, int, int) {{ needs_simulator("cp.async"); }}
void ab_sim_cp_async_commit() {{ needs_simulator("cp.async.commit_group"); }}
void ab_sim_cp_async_wait(int) {{ needs_simulator("cp.async.wait_group"); }}
void ab_sim_ldmatrix(u32*, const void*, int, bool) {{ needs_simulator("ldmatrix"); }}
void ab_sim_mma(const char*, u32*, const u32*, const u32*, const u32*) {{ needs_simulator("mma.sync"); }}
u32 ab_sim_shfl_xor(u32, int) {{ needs_simulator("shfl.sync"); }}
}}  // namespace ab

extern "C" const char* ab_host_launch(void** args, int threads, const long long* grid, unsigned char* shared) {{
  static thread_local std::string error;
  try {{
    ab::SimThread t;
    t.shared = shared;
    ab::ab_sim_current = &t;
    for (long long z = 0; z < grid[2]; ++z)
      for (long long y = 0; y < grid[1]; ++y)
        for (long long x = 0; x < grid[0]; ++x)
          for (int thread = 0; thread < threads; ++thread) {{
            t.thread = thread;
            t.block[0] = (int)x; t.block[1] = (int)y; t.block[2] = (int)z;
            {}({});
          }}
  }} catch (const std::exception& e) {{
    error = e.what();
    return error.c_str();
  }}
  return nullptr;
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
  const int status = pclose(pipe);
  if (status != 0) throw Error(fmt::format("host compile failed ({}):\n{}", command, output));
  return output;
}

}  // namespace

std::string host_compiler_command() {
  return std::string(ANYBIT_HOST_CXX) + " -std=c++17 -O1 -shared -fPIC -ffp-contract=off -fno-strict-aliasing -w";
}

struct HostKernel::Impl {
  const vm::Program* program = nullptr;
  vm::Program program_copy;
  std::int64_t shared_bytes = 0;
  int threads = 0;
  void* handle = nullptr;
  LaunchFn launch = nullptr;
  std::filesystem::path dir;
  ~Impl() {
    if (handle) dlclose(handle);
    std::error_code ec;
    if (!dir.empty()) std::filesystem::remove_all(dir, ec);
  }
};

HostKernel::HostKernel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HostKernel::~HostKernel() = default;
HostKernel::HostKernel(HostKernel&&) noexcept = default;
HostKernel& HostKernel::operator=(HostKernel&&) noexcept = default;

HostKernel HostKernel::build(const vm::Program& program, const EmittedKernel& kernel) {
  auto impl = std::make_unique<Impl>();
  impl->program_copy = program;
  impl->shared_bytes = kernel.shared_bytes;
  impl->threads = kernel.threads;
  std::random_device rd;
  impl->dir = std::filesystem::temp_directory_path() / fmt::format("anybit-host-{}-{:08x}{:08x}", kernel.name, rd(), rd());
  std::filesystem::create_directories(impl->dir);
  std::ofstream(impl->dir / kRuntimeHeaderName) << runtime_header();
  std::ofstream(impl->dir / "kernel.cpp") << kernel.source << host_support(program, kernel);
  const auto so = impl->dir / "kernel.so";
  run_command(fmt::format("{} -I'{}' '{}' -o '{}'", host_compiler_command(), impl->dir.string(),
                          (impl->dir / "kernel.cpp").string(), so.string()));
  impl->handle = dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!impl->handle) throw Error(fmt::format("cannot load the host kernel: {}", dlerror()));
  impl->launch = reinterpret_cast<LaunchFn>(dlsym(impl->handle, "ab_host_launch"));
  if (!impl->launch) throw Error("the host kernel has no ab_host_launch");
  return HostKernel(std::move(impl));
}

void HostKernel::launch(const vm::Arguments& args) const {
  const vm::Program& p = impl_->program_copy;
  std::vector<void*> argv;
  std::vector<long long> scalars(p.params.size());
  std::vector<unsigned char*> pointers(p.params.size());
  for (std::size_t i = 0; i < p.params.size(); ++i) {
    const vm::Param& q = p.params[i];
    if (q.kind == vm::ParamKind::Pointer) {
      auto it = args.buffers.find(q.name);
      if (it == args.buffers.end()) throw Error(fmt::format("no buffer given for pointer parameter '{}'", q.name));
      pointers[i] = it->second.data();
      argv.push_back(&pointers[i]);
    } else {
      auto it = args.scalars.find(q.name);
      if (it == args.scalars.end()) throw Error(fmt::format("no value given for parameter '{}'", q.name));
      scalars[i] = it->second;
      argv.push_back(&scalars[i]);
    }
  }
  const auto grid = vm::grid_size(p, args.scalars);
  const long long g[3] = {grid[0], grid[1], grid[2]};
  std::vector<unsigned char> shared(static_cast<std::size_t>(impl_->shared_bytes) + 16, 0);
  if (const char* error = impl_->launch(argv.data(), impl_->threads, g, shared.data()))
    throw Error(fmt::format("kernel '{}' on the CPU: {}", p.name, error));
}

}  // namespace anybit::backend_cuda
