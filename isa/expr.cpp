#include "isa/expr.h"

#include <algorithm>

#include "isa/error.h"

namespace anybit::isa {

namespace {

struct OpInfo {
  const char* text;
  int precedence;  // binary operators; higher binds tighter; 0 for function-call syntax
};

OpInfo info(ExprOp op) {
  switch (op) {
    case ExprOp::Or: return {"||", 1};
    case ExprOp::And: return {"&&", 2};
    case ExprOp::Eq: return {"==", 3};
    case ExprOp::Ne: return {"!=", 3};
    case ExprOp::Lt: return {"<", 4};
    case ExprOp::Le: return {"<=", 4};
    case ExprOp::Gt: return {">", 4};
    case ExprOp::Ge: return {">=", 4};
    case ExprOp::Add: return {"+", 5};
    case ExprOp::Sub: return {"-", 5};
    case ExprOp::Mul: return {"*", 6};
    case ExprOp::Div: return {"/", 6};
    case ExprOp::Mod: return {"%", 6};
    case ExprOp::Min: return {"min", 0};
    case ExprOp::Max: return {"max", 0};
    case ExprOp::CeilDiv: return {"ceil_div", 0};
    default: return {"", 0};
  }
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  const std::int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// Precedence 7 is unary, 8 atoms.
int precedence_of(const Expr& e) {
  switch (e.op()) {
    case ExprOp::Const: return e.constant() < 0 ? 7 : 8;
    case ExprOp::Var: return 8;
    case ExprOp::Neg:
    case ExprOp::Not: return 7;
    default: {
      const int p = info(e.op()).precedence;
      return p == 0 ? 8 : p;
    }
  }
}

std::string print(const Expr& e);

std::string operand(const Expr& e, int min_precedence) {
  std::string s = print(e);
  return precedence_of(e) < min_precedence ? "(" + s + ")" : s;
}

std::string print(const Expr& e) {
  switch (e.op()) {
    case ExprOp::Const: return std::to_string(e.constant());
    case ExprOp::Var: return e.name();
    // A prefix operator's operand is bare when it is itself a prefix operator or an atom (`- -x`, `!-x`), so
    // printed text never nests deeper than the text it was parsed from.
    case ExprOp::Neg: {
      // `-5` would read back as the constant -5: a negated constant keeps its parentheses.
      if (e.lhs().is_constant() && e.lhs().constant() >= 0) return "-(" + print(e.lhs()) + ")";
      const std::string s = operand(e.lhs(), 7);
      return (s.starts_with('-') ? "- " : "-") + s;
    }
    case ExprOp::Not: return "!" + operand(e.lhs(), 7);
    default: break;
  }
  const OpInfo i = info(e.op());
  if (i.precedence == 0) return fmt::format("{}({}, {})", i.text, print(e.lhs()), print(e.rhs()));
  // Left-associative: the right operand needs parentheses at equal precedence.
  return fmt::format("{} {} {}", operand(e.lhs(), i.precedence), i.text, operand(e.rhs(), i.precedence + 1));
}

}  // namespace

Expr::Expr(std::int64_t value) : node_(std::make_shared<ExprNode>(ExprNode{ExprOp::Const, value, {}, nullptr, nullptr})) {}

Expr Expr::var(std::string name) {
  Expr e;
  e.node_ = std::make_shared<ExprNode>(ExprNode{ExprOp::Var, 0, std::move(name), nullptr, nullptr});
  return e;
}

Expr Expr::make(ExprOp op, Expr a, Expr b) {
  ANYBIT_ASSERT(op != ExprOp::Const && op != ExprOp::Var, "Expr::make for a leaf op {}", static_cast<int>(op));
  Expr e;
  e.node_ = std::make_shared<ExprNode>(ExprNode{op, 0, {}, a.node_, b.node_});
  return e;
}

ExprOp Expr::op() const { return node_->op; }
std::int64_t Expr::constant() const { return node_->value; }
const std::string& Expr::name() const { return node_->name; }
Expr Expr::lhs() const { return Expr(node_->a); }
Expr Expr::rhs() const { return Expr(node_->b); }
std::string Expr::to_string() const { return print(*this); }

bool operator==(const Expr& a, const Expr& b) {
  if (a.node_ == b.node_) return true;
  if (a.op() != b.op()) return false;
  switch (a.op()) {
    case ExprOp::Const: return a.constant() == b.constant();
    case ExprOp::Var: return a.name() == b.name();
    case ExprOp::Neg:
    case ExprOp::Not: return a.lhs() == b.lhs();
    default: return a.lhs() == b.lhs() && a.rhs() == b.rhs();
  }
}

Expr operator+(Expr a, Expr b) { return Expr::make(ExprOp::Add, a, b); }
Expr operator-(Expr a, Expr b) { return Expr::make(ExprOp::Sub, a, b); }
Expr operator*(Expr a, Expr b) { return Expr::make(ExprOp::Mul, a, b); }
Expr operator/(Expr a, Expr b) { return Expr::make(ExprOp::Div, a, b); }
Expr operator%(Expr a, Expr b) { return Expr::make(ExprOp::Mod, a, b); }
Expr operator-(Expr a) { return Expr::make(ExprOp::Neg, a); }
Expr operator<(Expr a, Expr b) { return Expr::make(ExprOp::Lt, a, b); }
Expr operator<=(Expr a, Expr b) { return Expr::make(ExprOp::Le, a, b); }
Expr operator>(Expr a, Expr b) { return Expr::make(ExprOp::Gt, a, b); }
Expr operator>=(Expr a, Expr b) { return Expr::make(ExprOp::Ge, a, b); }
Expr operator&&(Expr a, Expr b) { return Expr::make(ExprOp::And, a, b); }
Expr operator||(Expr a, Expr b) { return Expr::make(ExprOp::Or, a, b); }
Expr operator!(Expr a) { return Expr::make(ExprOp::Not, a); }
Expr eq(Expr a, Expr b) { return Expr::make(ExprOp::Eq, a, b); }
Expr ne(Expr a, Expr b) { return Expr::make(ExprOp::Ne, a, b); }
Expr min(Expr a, Expr b) { return Expr::make(ExprOp::Min, a, b); }
Expr max(Expr a, Expr b) { return Expr::make(ExprOp::Max, a, b); }
Expr ceil_div(Expr a, Expr b) { return Expr::make(ExprOp::CeilDiv, a, b); }
Expr block_idx_x() { return Expr::var("blockIdx.x"); }
Expr block_idx_y() { return Expr::var("blockIdx.y"); }
Expr block_idx_z() { return Expr::var("blockIdx.z"); }

std::int64_t evaluate(const Expr& e, const Lookup& lookup) {
  auto checked = [&](bool overflow, const std::int64_t& r) {
    if (overflow) throw Error(fmt::format("integer overflow evaluating '{}'", e.to_string()));
    return r;  // read after the builtin has stored it
  };
  switch (e.op()) {
    case ExprOp::Const: return e.constant();
    case ExprOp::Var: {
      auto v = lookup(e.name());
      if (!v) throw Error(fmt::format("unknown name '{}' in expression", e.name()));
      return *v;
    }
    case ExprOp::Neg: {
      const std::int64_t a = evaluate(e.lhs(), lookup);
      std::int64_t r = 0;
      return checked(__builtin_sub_overflow(std::int64_t{0}, a, &r), r);
    }
    case ExprOp::Not: return evaluate(e.lhs(), lookup) == 0;
    default: break;
  }
  const std::int64_t a = evaluate(e.lhs(), lookup);
  if (e.op() == ExprOp::And && a == 0) return 0;
  if (e.op() == ExprOp::Or && a != 0) return 1;
  const std::int64_t b = evaluate(e.rhs(), lookup);
  std::int64_t r = 0;
  switch (e.op()) {
    case ExprOp::Add: return checked(__builtin_add_overflow(a, b, &r), r);
    case ExprOp::Sub: return checked(__builtin_sub_overflow(a, b, &r), r);
    case ExprOp::Mul: return checked(__builtin_mul_overflow(a, b, &r), r);
    case ExprOp::Div:
    case ExprOp::Mod:
    case ExprOp::CeilDiv: {
      if (b == 0) throw Error(fmt::format("division by zero evaluating '{}'", e.to_string()));
      if (a == INT64_MIN && b == -1) throw Error(fmt::format("integer overflow evaluating '{}'", e.to_string()));
      if (e.op() == ExprOp::Div) return floor_div(a, b);
      if (e.op() == ExprOp::Mod) return a - floor_div(a, b) * b;
      return -floor_div(-a, b);
    }
    case ExprOp::Min: return std::min(a, b);
    case ExprOp::Max: return std::max(a, b);
    case ExprOp::Lt: return a < b;
    case ExprOp::Le: return a <= b;
    case ExprOp::Gt: return a > b;
    case ExprOp::Ge: return a >= b;
    case ExprOp::Eq: return a == b;
    case ExprOp::Ne: return a != b;
    case ExprOp::And: return b != 0;
    case ExprOp::Or: return b != 0;
    default: ANYBIT_ASSERT(false, "unhandled expression op {}", static_cast<int>(e.op()));
  }
}

namespace {

std::int64_t saturate(__int128 v) {
  if (v < INT64_MIN) return INT64_MIN;
  if (v > INT64_MAX) return INT64_MAX;
  return static_cast<std::int64_t>(v);
}

// Hull of f over the corners of two ranges (exact for functions monotone in each argument).
template <typename F>
Interval corners(const Interval& a, const Interval& b, F f) {
  const __int128 c[4] = {f(a.lo, b.lo), f(a.lo, b.hi), f(a.hi, b.lo), f(a.hi, b.hi)};
  __int128 lo = c[0], hi = c[0];
  for (const __int128 v : c) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  return {saturate(lo), saturate(hi)};
}

__int128 floor_div128(__int128 a, __int128 b) {
  const __int128 q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

}  // namespace

Interval range_of(const Expr& e, const RangeLookup& lookup) {
  switch (e.op()) {
    case ExprOp::Const: return Interval::point(e.constant());
    case ExprOp::Var: return lookup(e.name()).value_or(Interval::full());
    case ExprOp::Neg: {
      const Interval a = range_of(e.lhs(), lookup);
      return {saturate(-static_cast<__int128>(a.hi)), saturate(-static_cast<__int128>(a.lo))};
    }
    case ExprOp::Not:
    case ExprOp::Lt:
    case ExprOp::Le:
    case ExprOp::Gt:
    case ExprOp::Ge:
    case ExprOp::Eq:
    case ExprOp::Ne:
    case ExprOp::And:
    case ExprOp::Or: return {0, 1};
    default: break;
  }
  const Interval a = range_of(e.lhs(), lookup), b = range_of(e.rhs(), lookup);
  using I = __int128;
  switch (e.op()) {
    case ExprOp::Add: return {saturate(I{a.lo} + b.lo), saturate(I{a.hi} + b.hi)};
    case ExprOp::Sub: return {saturate(I{a.lo} - b.hi), saturate(I{a.hi} - b.lo)};
    case ExprOp::Mul: return corners(a, b, [](I x, I y) { return x * y; });
    case ExprOp::Min: return {std::min(a.lo, b.lo), std::min(a.hi, b.hi)};
    case ExprOp::Max: return {std::max(a.lo, b.lo), std::max(a.hi, b.hi)};
    case ExprOp::Div:
    case ExprOp::CeilDiv: {
      if (b.lo <= 0 && b.hi >= 0) return Interval::full();  // the divisor may be zero (an error) or change sign
      if (e.op() == ExprOp::Div) return corners(a, b, floor_div128);
      return corners(a, b, [](I x, I y) { return -floor_div128(-x, y); });
    }
    case ExprOp::Mod: {
      // floor modulo takes the divisor's sign; a dividend already inside [0, b) is unchanged.
      if (b.lo > 0) {
        if (a.lo >= 0 && a.hi < b.lo) return a;
        return {0, b.hi - 1};
      }
      if (b.hi < 0) return {saturate(I{b.lo} + 1), 0};
      return Interval::full();
    }
    default: ANYBIT_ASSERT(false, "unhandled expression op {}", static_cast<int>(e.op()));
  }
}

void collect_variables(const Expr& e, std::set<std::string>& out) {
  if (e.op() == ExprOp::Var) out.insert(e.name());
  if (e.op() == ExprOp::Const || e.op() == ExprOp::Var) return;
  collect_variables(e.lhs(), out);
  if (e.op() != ExprOp::Neg && e.op() != ExprOp::Not) collect_variables(e.rhs(), out);
}

}  // namespace anybit::isa
