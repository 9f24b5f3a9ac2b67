#include "isa/error.h"

namespace anybit {

void internal_error(const char* condition, const std::string& message, const char* file, int line) {
  throw InternalError(fmt::format("anybit internal error at {}:{}: {} (condition: {}); please report it",
                                  file, line, message, condition));
}

}  // namespace anybit
