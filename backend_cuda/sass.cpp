#include "backend_cuda/sass.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>

#include "isa/error.h"

#ifndef ANYBIT_SOURCE_DIR
#define ANYBIT_SOURCE_DIR "."
#endif

namespace anybit::backend_cuda {

namespace {

bool executable(const std::filesystem::path& p) { return ::access(p.c_str(), X_OK) == 0 && std::filesystem::is_regular_file(p); }

}  // namespace

std::optional<std::string> find_disassembler() {
  if (const char* env = std::getenv("ANYBIT_NVDISASM"); env && *env && executable(env)) return std::string(env);
  if (const char* path = std::getenv("PATH")) {
    std::stringstream dirs(path);
    std::string dir;
    while (std::getline(dirs, dir, ':'))
      if (!dir.empty() && executable(std::filesystem::path(dir) / "nvdisasm")) return (std::filesystem::path(dir) / "nvdisasm").string();
  }
  if (executable("/usr/local/cuda/bin/nvdisasm")) return std::string("/usr/local/cuda/bin/nvdisasm");
  std::error_code ec;
  const std::filesystem::path tools = std::filesystem::path(ANYBIT_SOURCE_DIR) / ".tools" / "nvidia";
  if (std::filesystem::is_directory(tools, ec))
    for (const auto& entry : std::filesystem::directory_iterator(tools, ec))
      if (executable(entry.path() / "bin" / "nvdisasm")) return (entry.path() / "bin" / "nvdisasm").string();
  return std::nullopt;
}

std::string disassemble(const std::vector<char>& cubin, const std::string& nvdisasm) {
  std::random_device rd;
  const auto file = std::filesystem::temp_directory_path() / fmt::format("anybit-{:08x}{:08x}.cubin", rd(), rd());
  std::ofstream(file, std::ios::binary).write(cubin.data(), static_cast<std::streamsize>(cubin.size()));
  std::string out;
  FILE* pipe = popen(fmt::format("'{}' -c '{}' 2>&1", nvdisasm, file.string()).c_str(), "r");
  if (pipe) {
    char buffer[4096];
    while (std::size_t n = fread(buffer, 1, sizeof buffer, pipe)) out.append(buffer, n);
  }
  const int status = pipe ? pclose(pipe) : -1;
  std::filesystem::remove(file);
  if (status != 0) throw Error(fmt::format("{} failed on the kernel's cubin:\n{}", nvdisasm, out));
  return out;
}

std::map<std::string, int> sass_opcode_counts(const std::string& sass) {
  // "        /*0040*/   @!P0 LDG.E.128 R4, desc[UR4][R2.64] ;"
  static const std::regex instruction(R"(^\s*/\*[0-9a-f]+\*/\s+(?:@!?U?P[0-9T]+\s+)?([A-Z][A-Z0-9_.]*))");
  std::map<std::string, int> counts;
  std::istringstream in(sass);
  std::string line;
  std::smatch m;
  while (std::getline(in, line))
    if (std::regex_search(line, m, instruction)) ++counts[m[1].str()];
  return counts;
}

}  // namespace anybit::backend_cuda
