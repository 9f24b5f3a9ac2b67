#include "backend_cuda/cache.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <optional>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include "isa/error.h"

namespace anybit::backend_cuda {

namespace {

constexpr char kMagic[8] = {'A', 'B', 'K', 'C', 'A', 'C', 'H', '1'};
constexpr const char* kAnybitVersion = ANYBIT_VERSION;  // the project version (CMakeLists.txt)

std::string sha256_raw(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &size, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(digest), size);
}

void put(std::string& out, std::string_view field) {
  const std::uint64_t n = field.size();
  out.append(reinterpret_cast<const char*>(&n), sizeof n);
  out.append(field);
}

bool take(std::string_view& in, std::string& field) {
  std::uint64_t n = 0;
  if (in.size() < sizeof n) return false;
  std::memcpy(&n, in.data(), sizeof n);
  in.remove_prefix(sizeof n);
  if (n > in.size()) return false;
  field.assign(in.substr(0, n));
  in.remove_prefix(n);
  return true;
}

std::string serialize(const CompiledKernel& k) {
  std::string payload;
  put(payload, k.arch);
  put(payload, k.ptx);
  put(payload, std::string_view(k.cubin.data(), k.cubin.size()));
  put(payload, k.log);
  std::string out(kMagic, sizeof kMagic);
  out += payload;
  out += sha256_raw(out);
  return out;
}

// The entry's kernel, or nothing when it is truncated or corrupted.
std::optional<CompiledKernel> deserialize(const std::string& bytes) {
  if (bytes.size() < sizeof kMagic + 32 || bytes.compare(0, sizeof kMagic, kMagic, sizeof kMagic) != 0) return std::nullopt;
  const std::string_view body(bytes.data(), bytes.size() - 32);
  if (sha256_raw(body) != bytes.substr(bytes.size() - 32)) return std::nullopt;
  std::string_view in = body.substr(sizeof kMagic);
  CompiledKernel k;
  std::string cubin;
  if (!take(in, k.arch) || !take(in, k.ptx) || !take(in, cubin) || !take(in, k.log) || !in.empty()) return std::nullopt;
  k.cubin.assign(cubin.begin(), cubin.end());
  k.stats = parse_ptxas_log(k.log);
  return k;
}

std::optional<std::string> read_file(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::nullopt;
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// An exclusive flock held for the lifetime of the object (no lock when the file cannot be opened).
class FileLock {
 public:
  explicit FileLock(const std::filesystem::path& path) : fd_(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644)) {
    if (fd_ >= 0) ::flock(fd_, LOCK_EX);
  }
  ~FileLock() {
    if (fd_ >= 0) {
      ::flock(fd_, LOCK_UN);
      ::close(fd_);
    }
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  bool held() const { return fd_ >= 0; }

 private:
  int fd_;
};

}  // namespace

std::string sha256_hex(std::string_view bytes) {
  std::string hex;
  for (unsigned char c : sha256_raw(bytes)) hex += fmt::format("{:02x}", c);
  return hex;
}

KernelCache::KernelCache(std::filesystem::path dir, Warn warn) : dir_(std::move(dir)), warn_(std::move(warn)) {
  if (!warn_) warn_ = [](const std::string& m) { std::fprintf(stderr, "anybit: warning: %s\n", m.c_str()); };
}

std::filesystem::path KernelCache::default_directory() {
  if (const char* d = std::getenv("ANYBIT_CACHE_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::filesystem::path(x) / "anybit";
  if (const char* h = std::getenv("HOME"); h && *h) return std::filesystem::path(h) / ".cache" / "anybit";
  return std::filesystem::temp_directory_path() / "anybit-cache";
}

std::string KernelCache::key(const EmittedKernel& kernel, const CompileOptions& options) const {
  std::string material;
  for (const std::string& part : {kernel.source, runtime_header(), options.arch, nvrtc_version(), std::string(kAnybitVersion)}) {
    put(material, part);
  }
  return sha256_hex(material);
}

std::filesystem::path KernelCache::entry_path(const std::string& key) const { return dir_ / (key + ".kernel"); }

CompiledKernel KernelCache::get_or_compile(const EmittedKernel& kernel, const CompileOptions& options, CacheEvent* event) {
  auto report = [&](CacheEvent e) {
    if (event) *event = e;
  };
  const std::string k = key(kernel, options);
  const auto path = entry_path(k);
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) {
    warn_(fmt::format("kernel cache directory '{}' is unusable ({}); compiling without the cache", dir_.string(), ec.message()));
    report(CacheEvent::Uncached);
    return compile(kernel, options);
  }
  bool corrupt = false;
  auto try_read = [&]() -> std::optional<CompiledKernel> {
    auto bytes = read_file(path);
    if (!bytes) return std::nullopt;
    if (auto compiled = deserialize(*bytes)) return compiled;
    corrupt = true;
    return std::nullopt;
  };
  if (auto hit = try_read()) {
    report(CacheEvent::Hit);
    return *hit;
  }
  // Serialize compiles of this key; whoever waited may find the entry written meanwhile.
  FileLock lock(dir_ / (k + ".lock"));
  corrupt = false;
  if (auto hit = try_read()) {
    report(CacheEvent::Hit);
    return *hit;
  }
  if (corrupt) warn_(fmt::format("kernel cache entry '{}' is corrupted or truncated; recompiling", path.string()));
  CompiledKernel compiled = compile(kernel, options);
  std::random_device rd;
  const auto tmp = dir_ / fmt::format("{}.tmp.{}.{:08x}", k, ::getpid(), rd());
  const std::string bytes = serialize(compiled);
  bool written = false;
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    f.flush();
    written = static_cast<bool>(f);
  }
  if (written) std::filesystem::rename(tmp, path, ec);
  if (!written || ec) {
    std::filesystem::remove(tmp, ec);
    warn_(fmt::format("cannot write kernel cache entry '{}'; the kernel stays uncached", path.string()));
    report(CacheEvent::Uncached);
    return compiled;
  }
  report(corrupt ? CacheEvent::Corrupt : CacheEvent::Miss);
  return compiled;
}

}  // namespace anybit::backend_cuda
