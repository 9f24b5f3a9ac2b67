// The kernel cache: hits and misses, corrupted and truncated entries, unusable directories, threads.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "backend_cuda/cache.h"
#include "passes/pipeline.h"
#include "programs/examples.h"

using namespace anybit;
using backend_cuda::CacheEvent;

namespace {

struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& name) : path(std::filesystem::temp_directory_path() / name) {
    std::filesystem::remove_all(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

backend_cuda::EmittedKernel kernel() { return passes::run_pipeline(programs::vector_add()).kernel; }

}  // namespace

TEST_CASE("sha256 of known strings") {
  CHECK(backend_cuda::sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(backend_cuda::sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("a miss compiles and stores; a hit returns the same kernel without compiling") {
  TempDir dir("anybit-test-cache-basic");
  std::vector<std::string> warnings;
  backend_cuda::KernelCache cache(dir.path, [&](const std::string& w) { warnings.push_back(w); });
  CacheEvent event;
  const auto first = cache.get_or_compile(kernel(), {"sm_80"}, &event);
  CHECK(event == CacheEvent::Miss);
  const auto second = cache.get_or_compile(kernel(), {"sm_80"}, &event);
  CHECK(event == CacheEvent::Hit);
  CHECK(second.ptx == first.ptx);
  CHECK(second.cubin == first.cubin);
  CHECK(second.stats.registers == first.stats.registers);
  // Another architecture is another key.
  cache.get_or_compile(kernel(), {"sm_90"}, &event);
  CHECK(event == CacheEvent::Miss);
  CHECK(cache.key(kernel(), {"sm_80"}) != cache.key(kernel(), {"sm_90"}));
  CHECK(warnings.empty());
  // No temporary files are left behind.
  for (const auto& e : std::filesystem::directory_iterator(dir.path))
    CHECK(e.path().string().find(".tmp.") == std::string::npos);
}

TEST_CASE("a corrupted or truncated entry is detected, reported and recompiled") {
  TempDir dir("anybit-test-cache-corrupt");
  std::vector<std::string> warnings;
  backend_cuda::KernelCache cache(dir.path, [&](const std::string& w) { warnings.push_back(w); });
  const auto good = cache.get_or_compile(kernel(), {"sm_80"});
  const auto path = cache.entry_path(cache.key(kernel(), {"sm_80"}));
  const auto size = std::filesystem::file_size(path);
  {  // flip one byte in the middle
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(size / 2));
    f.put('\x5a' ^ static_cast<char>(size));
  }
  CacheEvent event;
  auto again = cache.get_or_compile(kernel(), {"sm_80"}, &event);
  CHECK(event == CacheEvent::Corrupt);
  CHECK(again.cubin == good.cubin);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find("corrupted or truncated; recompiling") != std::string::npos);
  std::filesystem::resize_file(path, size / 3);  // truncated
  again = cache.get_or_compile(kernel(), {"sm_80"}, &event);
  CHECK(event == CacheEvent::Corrupt);
  CHECK(cache.get_or_compile(kernel(), {"sm_80"}, &event).cubin == good.cubin);
  CHECK(event == CacheEvent::Hit);
}

TEST_CASE("an unusable cache directory degrades to uncached compiles with a warning") {
  TempDir dir("anybit-test-cache-file");
  std::filesystem::create_directories(dir.path);
  std::ofstream(dir.path / "not_a_directory") << "x";
  std::vector<std::string> warnings;
  backend_cuda::KernelCache cache(dir.path / "not_a_directory" / "cache", [&](const std::string& w) { warnings.push_back(w); });
  CacheEvent event;
  const auto k = cache.get_or_compile(kernel(), {"sm_80"}, &event);
  CHECK(event == CacheEvent::Uncached);
  CHECK_FALSE(k.cubin.empty());
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find("is unusable") != std::string::npos);
}

TEST_CASE("threads compiling the same kernel at once: one compile, all succeed") {
  TempDir dir("anybit-test-cache-threads");
  backend_cuda::KernelCache cache(dir.path);
  const auto k = kernel();
  std::vector<CacheEvent> events(8);
  std::vector<std::vector<char>> cubins(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] { cubins[i] = cache.get_or_compile(k, {"sm_80"}, &events[i]).cubin; });
  for (auto& t : threads) t.join();
  CHECK(std::count(events.begin(), events.end(), CacheEvent::Miss) == 1);
  CHECK(std::count(events.begin(), events.end(), CacheEvent::Hit) == 7);
  for (const auto& c : cubins) CHECK(c == cubins[0]);
}

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

namespace {

// Runs `body` in a child process and returns its exit status (-1 when it did not exit normally).
template <typename Fn>
int in_child(Fn body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    int code = 99;
    try {
      code = body();
    } catch (...) {
    }
    ::_exit(code);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST_CASE("8 processes of 8 threads compiling the same kernel at once: one compile, no partial entry seen") {
  TempDir dir("anybit-test-cache-processes");
  const auto k = kernel();
  // Each child reports misses + 16 * (corrupt or uncached events): a partial entry seen by a reader would
  // read as corrupt.
  std::vector<pid_t> children;
  for (int p = 0; p < 8; ++p) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      int code = 99;
      try {
        backend_cuda::KernelCache cache(dir.path);
        std::vector<CacheEvent> events(8);
        std::vector<std::thread> threads;
        for (int i = 0; i < 8; ++i) threads.emplace_back([&, i] { cache.get_or_compile(k, {"sm_80"}, &events[i]); });
        for (auto& t : threads) t.join();
        code = static_cast<int>(std::count(events.begin(), events.end(), CacheEvent::Miss));
        code += 16 * static_cast<int>(8 - std::count(events.begin(), events.end(), CacheEvent::Miss) -
                                      std::count(events.begin(), events.end(), CacheEvent::Hit));
      } catch (...) {
      }
      ::_exit(code);
    }
    children.push_back(pid);
  }
  int misses = 0;
  for (pid_t pid : children) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    REQUIRE(WIFEXITED(status));
    const int code = WEXITSTATUS(status);
    CHECK(code < 16);  // only hits and misses
    misses += code % 16;
  }
  CHECK(misses == 1);
  // Nothing but the entry and its lock file is left: no temporary file survives.
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path)) {
    CAPTURE(e.path().string());
    CHECK((e.path().extension() == ".kernel" || e.path().extension() == ".lock"));
    entries += e.path().extension() == ".kernel";
  }
  CHECK(entries == 1);
}

TEST_CASE("a read-only cache still serves its entries and compiles the rest uncached, with a warning") {
  TempDir dir("anybit-test-cache-readonly");
  backend_cuda::KernelCache(dir.path).get_or_compile(kernel(), {"sm_80"});
  std::filesystem::permissions(dir.path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec |
                                             std::filesystem::perms::group_read | std::filesystem::perms::group_exec |
                                             std::filesystem::perms::others_read | std::filesystem::perms::others_exec);
  for (const auto& e : std::filesystem::directory_iterator(dir.path)) ::chmod(e.path().c_str(), 0444);
  // Root ignores permissions: the child gives them up first (to nobody) when it has them.
  const int code = in_child([&] {
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) return 98;
    std::vector<std::string> warnings;
    backend_cuda::KernelCache cache(dir.path, [&](const std::string& w) { warnings.push_back(w); });
    CacheEvent hit, other;
    cache.get_or_compile(kernel(), {"sm_80"}, &hit);
    const auto k = cache.get_or_compile(passes::run_pipeline(programs::tiled_matmul()).kernel, {"sm_80"}, &other);
    if (hit != CacheEvent::Hit) return 1;
    if (other != CacheEvent::Uncached || k.cubin.empty()) return 2;
    if (warnings.size() != 1 || warnings[0].find("cannot write kernel cache entry") == std::string::npos) return 3;
    return 0;
  });
  std::filesystem::permissions(dir.path, std::filesystem::perms::owner_all);
  CHECK(code == 0);
}

TEST_CASE("a full disk (writes failing) compiles uncached, with a warning, and leaves no partial file") {
  TempDir dir("anybit-test-cache-full");
  std::filesystem::create_directories(dir.path);
  const int code = in_child([&] {
    // Files may not grow past 512 bytes: every entry write fails (EFBIG) as on a full disk.
    std::signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{512, 512};
    if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) return 98;
    std::vector<std::string> warnings;
    backend_cuda::KernelCache cache(dir.path, [&](const std::string& w) { warnings.push_back(w); });
    CacheEvent event;
    const auto k = cache.get_or_compile(kernel(), {"sm_80"}, &event);
    if (event != CacheEvent::Uncached || k.cubin.empty()) return 1;
    if (warnings.size() != 1 || warnings[0].find("stays uncached") == std::string::npos) return 2;
    return 0;
  });
  CHECK(code == 0);
  for (const auto& e : std::filesystem::directory_iterator(dir.path)) CHECK(e.path().extension() == ".lock");
}
