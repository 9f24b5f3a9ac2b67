#include "isa/tensor_type.h"

#include <fmt/format.h>

namespace anybit::isa {

std::string TensorType::to_string() const {
  switch (scope) {
    case Scope::Register:
      if (!layout) return fmt::format("{}[{}]", dtype.name(), fmt::join(shape, ","));
      return fmt::format("{}[{}] @ {}", dtype.name(), fmt::join(shape, ","), layout->to_string());
    case Scope::Shared:
      return fmt::format("shared {}[{}] @ {}", dtype.name(), fmt::join(shape, ","), shared->to_string());
    case Scope::Global: {
      std::vector<std::string> s, t;
      for (const auto& e : global_shape) s.push_back(e.to_string());
      for (const auto& e : global_strides) t.push_back(e.to_string());
      return fmt::format("global {}[{}] strides [{}]", dtype.name(), fmt::join(s, ", "), fmt::join(t, ", "));
    }
  }
  return "?";
}

}  // namespace anybit::isa
