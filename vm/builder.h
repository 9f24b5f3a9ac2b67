// The C++ embedded builder: writes a vm::Program the way the .vm text reads.
//
//   vm::Builder b("vector_add", /*warps=*/2);
//   auto a = b.pointer("a", f32);  auto n = b.i32("n");
//   b.grid({ceil_div(n, 256)});
//   auto va = b.global_view(a, {n}, {1});
//   auto tile = vm::reg(f32, {256}, spatial({64}) * local({4}));
//   auto x = b.load_global(va, {block_idx_x() * 256}, tile, /*masked=*/true);
//
// Every call type-checks at once: a bad call throws anybit::Error naming the call site
// (std::source_location) and the problem. build() runs the full verifier.
#pragma once

#include <functional>
#include <map>
#include <set>
#include <source_location>
#include <string>
#include <vector>

#include "vm/program.h"
#include "vm/verifier.h"

namespace anybit::vm {

struct Value {
  std::string name;
};
struct Pointer {
  std::string name;
};

using Loc = std::source_location;

// A register tile type (open layout when none is given).
inline TensorType reg(DataType dtype, layout::Shape shape, std::optional<layout::RegisterLayout> l = std::nullopt) {
  return TensorType::registers(dtype, std::move(shape), std::move(l));
}

// Which elements of a global access may lie outside the view: none (false), any (true: every dimension is
// bounds-tested), or those along the named dimensions only (Mask::along({1}): rows of a tile whose columns
// are known to be inside), which leaves the kernel fewer tests.
struct Mask {
  bool on = false;
  std::vector<int> dims;  // ascending; empty: every dimension
  Mask(bool masked = false) : on(masked) {}  // NOLINT(google-explicit-constructor): masked=true/false reads as before
  static Mask along(std::vector<int> dims) {
    Mask m(true);
    m.dims = std::move(dims);
    return m;
  }
};

class Builder {
 public:
  explicit Builder(std::string name, int warps = 4, Loc loc = Loc::current());

  Pointer pointer(std::string name, DataType dtype, Loc loc = Loc::current());
  Expr i32(std::string name, Loc loc = Loc::current());
  Expr i64(std::string name, Loc loc = Loc::current());
  void grid(std::vector<Expr> dims, Loc loc = Loc::current());
  int threads() const { return program_.warps * 32; }

  Value global_view(Pointer p, std::vector<Expr> shape, std::vector<Expr> strides, Loc loc = Loc::current());
  Value alloc_shared(DataType dtype, layout::SharedLayout l, Loc loc = Loc::current());
  Value alloc_register(TensorType type, double init = 0.0, Loc loc = Loc::current());
  void free_shared(Value s, Loc loc = Loc::current());

  Value load_global(Value view, std::vector<Expr> offset, TensorType tile, Mask masked = false, Loc loc = Loc::current());
  void store_global(Value tile, Value view, std::vector<Expr> offset, Mask masked = false, Loc loc = Loc::current());
  Value load_shared(Value s, std::vector<Expr> offset, TensorType tile, Loc loc = Loc::current());
  void store_shared(Value tile, Value s, std::vector<Expr> offset, Loc loc = Loc::current());
  // Unmasked, every element must lie inside the view (the interpreter checks); masked, those outside read
  // as zeros (tails), at the cost of a bounds test per copied chunk in the kernel (along the masked
  // dimensions only: Mask::along).
  void copy_async(Value s, std::vector<Expr> shared_offset, Value view, std::vector<Expr> global_offset,
                  layout::Shape shape, Mask masked = false, Loc loc = Loc::current());
  void commit_group(Loc loc = Loc::current());
  void wait_group(int n, Loc loc = Loc::current());
  void sync_threads(Loc loc = Loc::current());

  Value cast(Value x, DataType to, Loc loc = Loc::current());
  // x * 2^exp in `to`, an exact rescale (the verifier checks every value of x's type): lets a decode skip
  // its power-of-two bias multiply when the factor can be applied elsewhere, e.g. once per scale group.
  Value cast_scaled(Value x, DataType to, int exp, Loc loc = Loc::current());
  Value cast_scaled(Value x, const TensorType& to, int exp, Loc loc = Loc::current());
  // A cast whose source promises no NaN or infinite code ({finite}; exp = 0 adds no exp attribute): the
  // interpreter reports one, and compiled decodes skip their patches for them.
  Value cast_finite(Value x, const TensorType& to, int exp = 0, Loc loc = Loc::current());
  // The cast's result in `to`'s layout: each thread's elements in another slot order.
  Value cast(Value x, const TensorType& to, Loc loc = Loc::current());
  Value neg(Value x, Loc loc = Loc::current());
  Value abs(Value x, Loc loc = Loc::current());
  Value add(Value a, Value b, Loc loc = Loc::current());
  Value sub(Value a, Value b, Loc loc = Loc::current());
  Value mul(Value a, Value b, Loc loc = Loc::current());
  Value div(Value a, Value b, Loc loc = Loc::current());
  Value min(Value a, Value b, Loc loc = Loc::current());
  Value max(Value a, Value b, Loc loc = Loc::current());
  Value fma(Value a, Value b, Value c, Loc loc = Loc::current());
  Value where(Value cond, Value a, Value b, Loc loc = Loc::current());
  Value reduce(Value x, std::vector<int> dims, std::string op, Loc loc = Loc::current());
  void dot(Value c, Value a, Value b, Loc loc = Loc::current());
  Value view(Value x, TensorType as, Loc loc = Loc::current());
  Value reshape(Value x, layout::Shape shape, Loc loc = Loc::current());
  void assign(Value dst, Value src, Loc loc = Loc::current());

  Expr let(std::string name, Expr value, Loc loc = Loc::current());
  void for_range(std::string var, Expr begin, Expr end, const std::function<void(Expr)>& body, int unroll = 1,
                 Expr step = 1, Loc loc = Loc::current());
  void if_then(Expr condition, const std::function<void()>& then_body, const std::function<void()>& else_body = {},
               Loc loc = Loc::current());

  // Gives the value a readable name in the printed program; returns the renamed value.
  Value name(Value v, std::string name, Loc loc = Loc::current());

  const TensorType& type_of(Value v) const;
  // Verifies the whole program; throws anybit::Error listing every violation with its call site.
  Program build(Loc loc = Loc::current()) const;

 private:
  Value emit(isa::Opcode op, std::vector<isa::Operand> operands, std::optional<TensorType> type,
             isa::Attributes attrs, const Loc& loc);
  std::string fresh_name();
  Expr scalar_param(std::string name, ParamKind kind, const Loc& loc);
  Instruction* definition(const std::string& value);
  Body& current() { return *bodies_.back(); }

  Program program_;
  std::vector<Body*> bodies_;
  std::map<std::string, TensorType> types_;
  std::set<std::string> scalars_;
  int next_value_ = 0;
};

}  // namespace anybit::vm
