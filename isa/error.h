// The two error channels of anybit (STYLE.md §6).
//
// anybit::Error is for user errors: a bad program, a bad .vm file, a bad argument. Its message names the
// object and, where possible, the place (builder call site or .vm line:column) and the fix.
// ANYBIT_ASSERT is for internal invariants: a failure is a bug in anybit, never in the user's input.
#pragma once

#include <source_location>
#include <stdexcept>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace anybit {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// A builder call site, printed as "file:line" (only the file's base name, for stable messages).
inline std::string describe(const std::source_location& loc) {
  std::string file = loc.file_name();
  if (auto slash = file.find_last_of('/'); slash != std::string::npos) file = file.substr(slash + 1);
  return fmt::format("{}:{}", file, loc.line());
}

// Thrown by ANYBIT_ASSERT: distinct from Error so callers and tests can tell a bug from bad input.
class InternalError : public std::logic_error {
 public:
  explicit InternalError(const std::string& message) : std::logic_error(message) {}
};

// User text quoted in a message: bytes outside printable ASCII as \xNN (NUL, invalid UTF-8, control
// characters), cut after `limit` bytes with the total length noted.
std::string printable(std::string_view text, std::size_t limit = 64);

[[noreturn]] void internal_error(const char* condition, const std::string& message, const char* file, int line);

}  // namespace anybit

#define ANYBIT_ASSERT(cond, ...)                                                                    \
  do {                                                                                              \
    if (!(cond)) ::anybit::internal_error(#cond, ::fmt::format(__VA_ARGS__), __FILE__, __LINE__); \
  } while (0)
