#include "backend_cuda/nvrtc.h"

#include <nvrtc.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>

#include "isa/error.h"

namespace anybit::backend_cuda {

namespace {

class Program {
 public:
  Program(const EmittedKernel& k) {
    const char* headers[] = {runtime_header().c_str()};
    const char* names[] = {kRuntimeHeaderName};
    check(nvrtcCreateProgram(&prog_, k.source.c_str(), (k.name + ".cu").c_str(), 1, headers, names), "create");
  }
  ~Program() { nvrtcDestroyProgram(&prog_); }
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;

  nvrtcResult compile(const std::vector<std::string>& options) {
    std::vector<const char*> argv;
    for (const auto& o : options) argv.push_back(o.c_str());
    return nvrtcCompileProgram(prog_, static_cast<int>(argv.size()), argv.data());
  }
  std::string log() {
    std::size_t size = 0;
    nvrtcGetProgramLogSize(prog_, &size);
    std::string text(size, '\0');
    nvrtcGetProgramLog(prog_, text.data());
    while (!text.empty() && text.back() == '\0') text.pop_back();
    return text;
  }
  std::string ptx() {
    std::size_t size = 0;
    check(nvrtcGetPTXSize(prog_, &size), "PTX size");
    std::string text(size, '\0');
    check(nvrtcGetPTX(prog_, text.data()), "PTX");
    while (!text.empty() && text.back() == '\0') text.pop_back();
    return text;
  }
  std::vector<char> cubin() {
    std::size_t size = 0;
    check(nvrtcGetCUBINSize(prog_, &size), "cubin size");
    std::vector<char> bytes(size);
    check(nvrtcGetCUBIN(prog_, bytes.data()), "cubin");
    return bytes;
  }
  static void check(nvrtcResult r, const char* what) {
    if (r != NVRTC_SUCCESS) throw Error(fmt::format("NVRTC {} failed: {}", what, nvrtcGetErrorString(r)));
  }

 private:
  nvrtcProgram prog_ = nullptr;
};

std::string numbered(const std::string& source) {
  std::string out;
  int n = 1;
  std::size_t start = 0;
  while (start < source.size()) {
    const auto end = source.find('\n', start);
    out += fmt::format("{:5} | {}\n", n++, source.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

std::string write_reproducer(const EmittedKernel& k, const std::vector<std::string>& options) {
  std::random_device rd;
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("anybit-repro-{}-{:08x}", k.name, rd());
  std::filesystem::create_directories(dir);
  std::ofstream(dir / (k.name + ".cu")) << k.source;
  std::ofstream(dir / kRuntimeHeaderName) << runtime_header();
  std::string arch = "sm_80";
  for (const auto& o : options)
    if (o.starts_with("--gpu-architecture=")) arch = o.substr(19);
  std::ofstream(dir / "repro.sh") << fmt::format("#!/bin/sh\n# NVRTC options: {}\nnvcc -std=c++17 -arch={} -cubin -I. {}.cu\n",
                                                 fmt::join(options, " "), arch, k.name);
  return dir.string();
}

int match_int(const std::string& text, const std::regex& re) {
  std::smatch m;
  return std::regex_search(text, m, re) ? std::stoi(m[1].str()) : 0;
}

}  // namespace

KernelStats parse_ptxas_log(const std::string& log) {
  KernelStats s;
  static const std::regex registers(R"(Used (\d+) registers)"), spill_st(R"((\d+) bytes spill stores)"),
      spill_ld(R"((\d+) bytes spill loads)"), stack(R"((\d+) bytes stack frame)"), smem(R"((\d+) bytes smem)");
  std::smatch m;
  if (std::regex_search(log, m, registers)) {
    s.registers = std::stoi(m[1].str());
    s.reported = true;
  }
  s.spill_store_bytes = match_int(log, spill_st);
  s.spill_load_bytes = match_int(log, spill_ld);
  s.stack_bytes = match_int(log, stack);
  s.static_shared_bytes = match_int(log, smem);
  return s;
}

std::int64_t shared_memory_limit(const std::string& arch) {
  // CUDA C Programming Guide, "Technical Specifications per Compute Capability" (maximum per block,
  // opt-in): 8.0 and 8.7: 163 KiB; 8.6 and 8.9: 99 KiB; 9.0, 10.x: 227 KiB; 12.x: 99 KiB.
  static const std::regex number(R"((?:sm|compute)_(\d+))");
  std::smatch m;
  const int cc = std::regex_search(arch, m, number) ? std::stoi(m[1].str()) : 80;
  if (cc == 80 || cc == 87) return 163 * 1024;
  if (cc >= 90 && cc < 120) return 227 * 1024;
  return 99 * 1024;
}

std::string nvrtc_version() {
  int major = 0, minor = 0;
  nvrtcVersion(&major, &minor);
  return fmt::format("{}.{}", major, minor);
}

std::vector<std::string> supported_archs() {
  int count = 0;
  nvrtcGetNumSupportedArchs(&count);
  std::vector<int> archs(static_cast<std::size_t>(count));
  if (count > 0) nvrtcGetSupportedArchs(archs.data());
  std::vector<std::string> out;
  for (int a : archs) out.push_back(fmt::format("sm_{}", a));
  return out;
}

CompiledKernel compile(const EmittedKernel& kernel, const CompileOptions& options) {
  static const std::regex arch_form(R"((sm|compute)_\d+[af]?)");
  if (!std::regex_match(options.arch, arch_form))
    throw Error(fmt::format("unknown architecture '{}'; use sm_XX for cubin and PTX (e.g. sm_80, sm_90a) or "
                            "compute_XX for PTX only",
                            options.arch));
  const bool real = options.arch.starts_with("sm_");
  if (kernel.shared_bytes > shared_memory_limit(options.arch))
    throw Error(fmt::format("kernel '{}' needs {} bytes of shared memory; {} allows {} per block", kernel.name,
                            kernel.shared_bytes, options.arch, shared_memory_limit(options.arch)));
  std::vector<std::string> args = {"--gpu-architecture=" + options.arch, "-std=c++17", "--device-as-default-execution-space"};
  if (real) args.push_back("--ptxas-options=-v");
  Program prog(kernel);
  const nvrtcResult result = prog.compile(args);
  CompiledKernel out;
  out.arch = options.arch;
  out.log = prog.log();
  if (result != NVRTC_SUCCESS) {
    const std::string repro = write_reproducer(kernel, args);
    throw Error(fmt::format("NVRTC could not compile kernel '{}' for {}: {}\noptions: {}\nsource:\n{}log:\n{}\n"
                            "reproducer: {}",
                            kernel.name, options.arch, nvrtcGetErrorString(result), fmt::join(args, " "),
                            numbered(kernel.source), out.log, repro));
  }
  if (const char* dump = std::getenv("ANYBIT_DUMP_DIR"); dump && *dump) {
    std::error_code ec;
    std::filesystem::create_directories(dump, ec);
    std::ofstream(std::filesystem::path(dump) / fmt::format("{}.{}.log", kernel.name, options.arch)) << out.log;
  }
  out.ptx = prog.ptx();
  if (real) {
    out.cubin = prog.cubin();
    out.stats = parse_ptxas_log(out.log);
  }
  return out;
}

}  // namespace anybit::backend_cuda
