// libFuzzer: the .vm parser. Any input either parses or gives anybit::Error; whatever parses prints to
// canonical text that parses back to the same text (the printer and parser agree).
#include <cstdint>
#include <string_view>

#include "isa/error.h"
#include "vm/program.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  anybit::vm::Program program;
  try {
    program = anybit::vm::parse(text, "fuzz.vm");
  } catch (const anybit::Error&) {
    return 0;
  }
  const std::string printed = anybit::vm::print(program);
  std::string again;
  try {
    again = anybit::vm::print(anybit::vm::parse(printed, "printed.vm"));
  } catch (const anybit::Error& e) {
    ANYBIT_ASSERT(false, "printed program does not parse: {}\n{}", e.what(), printed);
  }
  ANYBIT_ASSERT(again == printed, "print(parse(print(p))) != print(p):\n{}\n---\n{}", printed, again);
  return 0;
}
