// Scalar integer expressions: grid sizes, tile offsets, loop bounds, shapes and strides of global views.
// Immutable nodes shared by pointer; operator== is structural equality, comparisons that build
// expressions are the named functions eq/ne and the operators < <= > >=.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>

namespace anybit::isa {

enum class ExprOp {
  Const, Var,
  Add, Sub, Mul, Div, Mod, Min, Max, CeilDiv,  // Div and Mod round toward negative infinity
  Lt, Le, Gt, Ge, Eq, Ne, And, Or,             // results 0 or 1
  Neg, Not
};

struct ExprNode;

class Expr {
 public:
  Expr() : Expr(std::int64_t{0}) {}
  Expr(std::int64_t value);  // NOLINT: constants convert implicitly
  Expr(int value) : Expr(static_cast<std::int64_t>(value)) {}
  static Expr var(std::string name);
  static Expr make(ExprOp op, Expr a, Expr b = Expr());

  ExprOp op() const;
  std::int64_t constant() const;  // only for Const
  const std::string& name() const;  // only for Var
  Expr lhs() const;
  Expr rhs() const;
  bool is_constant() const { return op() == ExprOp::Const; }

  std::string to_string() const;
  friend bool operator==(const Expr& a, const Expr& b);

 private:
  explicit Expr(std::shared_ptr<const ExprNode> node) : node_(std::move(node)) {}
  std::shared_ptr<const ExprNode> node_;
};

struct ExprNode {
  ExprOp op;
  std::int64_t value = 0;
  std::string name;
  std::shared_ptr<const ExprNode> a, b;
};

Expr operator+(Expr a, Expr b);
Expr operator-(Expr a, Expr b);
Expr operator*(Expr a, Expr b);
Expr operator/(Expr a, Expr b);
Expr operator%(Expr a, Expr b);
Expr operator-(Expr a);
Expr operator<(Expr a, Expr b);
Expr operator<=(Expr a, Expr b);
Expr operator>(Expr a, Expr b);
Expr operator>=(Expr a, Expr b);
Expr operator&&(Expr a, Expr b);
Expr operator||(Expr a, Expr b);
Expr operator!(Expr a);
Expr eq(Expr a, Expr b);
Expr ne(Expr a, Expr b);
Expr min(Expr a, Expr b);
Expr max(Expr a, Expr b);
Expr ceil_div(Expr a, Expr b);

// The block index registers, as variables.
Expr block_idx_x();
Expr block_idx_y();
Expr block_idx_z();

// Value of every variable the expression names; nullopt for an unknown name.
using Lookup = std::function<std::optional<std::int64_t>(const std::string&)>;
// Evaluates with overflow and division-by-zero checks (anybit::Error naming the expression).
std::int64_t evaluate(const Expr& e, const Lookup& lookup);
// Names of the variables the expression uses.
void collect_variables(const Expr& e, std::set<std::string>& out);

// The closed range [lo, hi] an expression's value lies in (bounds saturate at the int64 limits). The
// backend computes an expression in 32 bits when it and its operands provably fit.
struct Interval {
  std::int64_t lo = INT64_MIN, hi = INT64_MAX;
  static Interval full() { return {}; }
  static Interval point(std::int64_t v) { return {v, v}; }
  bool fits_i32() const { return lo >= INT32_MIN && hi <= INT32_MAX; }
  bool non_negative() const { return lo >= 0; }
  friend bool operator==(const Interval&, const Interval&) = default;
};
// Range of each variable; nullopt (unknown) means the full int64 range.
using RangeLookup = std::function<std::optional<Interval>(const std::string&)>;
Interval range_of(const Expr& e, const RangeLookup& lookup);

}  // namespace anybit::isa
