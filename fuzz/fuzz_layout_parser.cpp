// libFuzzer: the layout-expression parser. Any input either parses or gives anybit::Error; whatever parses
// prints canonically and parses back to the same map.
#include <cstdint>
#include <string_view>

#include "isa/error.h"
#include "layout/register_layout.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  anybit::layout::RegisterLayout l;
  try {
    l = anybit::layout::parse_layout(text);
  } catch (const anybit::Error&) {
    return 0;
  }
  const std::string printed = l.to_string();
  anybit::layout::RegisterLayout back;
  try {
    back = anybit::layout::parse_layout(printed);
  } catch (const anybit::Error& e) {
    ANYBIT_ASSERT(false, "canonical text '{}' does not parse: {}", printed, e.what());
  }
  ANYBIT_ASSERT(back == l, "'{}' printed as '{}' parses to a different layout", text, printed);
  return 0;
}
