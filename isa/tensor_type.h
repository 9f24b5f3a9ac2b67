// Types of VM tensors: global views, shared tiles and register tiles.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "isa/dtype.h"
#include "isa/expr.h"
#include "layout/register_layout.h"
#include "layout/shared_layout.h"

namespace anybit::isa {

enum class Scope { Global, Shared, Register };

struct TensorType {
  Scope scope = Scope::Register;
  DataType dtype;
  layout::Shape shape;                            // shared and register tiles (static)
  std::optional<layout::RegisterLayout> layout;   // register tiles; nullopt = left for layout inference
  std::optional<layout::SharedLayout> shared;     // shared tiles
  std::vector<Expr> global_shape, global_strides;  // global views (expressions of parameters)
  std::string param;                              // global views: the pointer parameter

  static TensorType registers(DataType dtype, layout::Shape shape,
                              std::optional<layout::RegisterLayout> layout = std::nullopt) {
    return {Scope::Register, dtype, std::move(shape), std::move(layout), std::nullopt, {}, {}, {}};
  }
  static TensorType shared_tile(DataType dtype, layout::SharedLayout l) {
    layout::Shape shape = l.shape();
    return {Scope::Shared, dtype, std::move(shape), std::nullopt, std::move(l), {}, {}, {}};
  }

  int rank() const { return static_cast<int>(scope == Scope::Global ? global_shape.size() : shape.size()); }
  // Register tiles: bits each thread holds (local_size * dtype bits).
  std::int64_t bits_per_thread() const { return layout ? layout->local_size() * dtype.bits() : 0; }

  // Text: "f16[16,16] @ LAYOUT", "f16[16,16]" (open layout), "shared f16[64,32] @ SHARED_LAYOUT",
  // "global f16[M, K] strides [K, 1]".
  std::string to_string() const;
  friend bool operator==(const TensorType&, const TensorType&) = default;
};

}  // namespace anybit::isa
