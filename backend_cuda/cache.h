// Disk cache of compiled kernels.
//
// Key: SHA-256 of the kernel source, the runtime header, the compile options, the NVRTC version and the
// anybit version. An entry is written to a temporary file and renamed into place, so readers never see a
// partial entry; it ends with a SHA-256 of its contents, so a truncated or corrupted entry is detected,
// reported and recompiled. Compiles of the same key are serialized with a lock file (flock), across
// threads and processes: one compiles, the others then read its entry. A directory that cannot be written
// (read-only, full, missing) degrades to compiling without the cache, with a warning.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include "backend_cuda/nvrtc.h"

namespace anybit::backend_cuda {

enum class CacheEvent { Hit, Miss, Corrupt, Uncached };

class KernelCache {
 public:
  using Warn = std::function<void(const std::string&)>;
  // warn defaults to a line on stderr.
  explicit KernelCache(std::filesystem::path dir, Warn warn = {});
  // $ANYBIT_CACHE_DIR, else $XDG_CACHE_HOME/anybit, else ~/.cache/anybit.
  static std::filesystem::path default_directory();

  CompiledKernel get_or_compile(const EmittedKernel& kernel, const CompileOptions& options, CacheEvent* event = nullptr);
  std::string key(const EmittedKernel& kernel, const CompileOptions& options) const;
  std::filesystem::path entry_path(const std::string& key) const;
  const std::filesystem::path& directory() const { return dir_; }

 private:
  std::filesystem::path dir_;
  Warn warn_;
};

// SHA-256 of bytes, as 64 hex digits.
std::string sha256_hex(std::string_view bytes);

}  // namespace anybit::backend_cuda
