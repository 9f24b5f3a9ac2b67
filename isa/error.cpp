#include "isa/error.h"

namespace anybit {

std::string printable(std::string_view text, std::size_t limit) {
  std::string out;
  for (std::size_t i = 0; i < text.size() && i < limit; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7F) out += static_cast<char>(c);
    else out += fmt::format("\\x{:02x}", c);
  }
  if (text.size() > limit) out += fmt::format("... ({} bytes)", text.size());
  return out;
}

void internal_error(const char* condition, const std::string& message, const char* file, int line) {
  throw InternalError(fmt::format("anybit internal error at {}:{}: {} (condition: {}); please report it",
                                  file, line, message, condition));
}

}  // namespace anybit
