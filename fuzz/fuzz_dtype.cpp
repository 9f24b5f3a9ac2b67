// libFuzzer: data-type names and codes. A name either parses or gives anybit::Error; a parsed type's name
// parses back to it, and the remaining bytes, taken as codes, decode to values that encode back to the
// same code (NaN codes to a NaN code).
#include <cmath>
#include <cstdint>
#include <string_view>

#include "isa/dtype.h"
#include "isa/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t split = input.find('\n');
  const std::string_view name = input.substr(0, split);
  anybit::isa::DataType t;
  try {
    t = anybit::isa::parse_dtype(name);
  } catch (const anybit::Error&) {
    return 0;
  }
  ANYBIT_ASSERT(anybit::isa::parse_dtype(t.name()) == t, "'{}' does not parse back to itself", t.name());
  if (split == std::string_view::npos || t.bits() > 32) return 0;
  for (std::size_t i = split + 1; i + 4 <= size; i += 4) {
    std::uint32_t code = static_cast<std::uint32_t>(data[i]) | data[i + 1] << 8 | data[i + 2] << 16 |
                         static_cast<std::uint32_t>(data[i + 3]) << 24;
    code &= t.code_mask();
    const double v = anybit::isa::decode(t, code);
    const std::uint32_t back = anybit::isa::encode(t, v);
    if (std::isinf(v) && !(t == anybit::isa::DataType::f16() || t == anybit::isa::DataType::bf16() ||
                            t == anybit::isa::DataType::f32())) {
      // Small floats saturate: encoding an infinity gives the largest finite value of its sign.
      ANYBIT_ASSERT(anybit::isa::decode(t, back) == std::copysign(anybit::isa::max_finite(t), v),
                    "{}: code {:#x} (inf) encodes to {:#x}, not the saturated maximum", t.name(), code, back);
    } else if (std::isnan(v)) {
      ANYBIT_ASSERT(std::isnan(anybit::isa::decode(t, back)), "{}: NaN code {:#x} encodes to non-NaN {:#x}", t.name(), code, back);
    } else {
      ANYBIT_ASSERT(anybit::isa::decode(t, back) == v, "{}: code {:#x} ({}) encodes back to {:#x}", t.name(), code, v, back);
    }
  }
  return 0;
}
