#include "passes/simplify.h"

#include <set>

#include "isa/error.h"
#include "vm/verifier.h"

namespace anybit::passes {

namespace {

using isa::Expr;
using isa::ExprOp;

bool is(const Expr& e, std::int64_t v) { return e.is_constant() && e.constant() == v; }

// Can evaluating e fail? Only division, modulo and ceil_div by something other than a nonzero constant
// (overflow aside, which folding already guards).
bool can_fail(const Expr& e) {
  switch (e.op()) {
    case ExprOp::Const:
    case ExprOp::Var: return false;
    case ExprOp::Neg:
    case ExprOp::Not: return can_fail(e.lhs());
    case ExprOp::Div:
    case ExprOp::Mod:
    case ExprOp::CeilDiv:
      if (!(e.rhs().is_constant() && e.rhs().constant() != 0)) return true;
      [[fallthrough]];
    default: return can_fail(e.lhs()) || can_fail(e.rhs());
  }
}

void simplify_all(std::vector<Expr>& es) {
  for (auto& e : es) e = simplify(e);
}

class Simplifier {
 public:
  void body(vm::Body& b) {
    vm::Body out;
    for (auto& st : b) statement(st, out);
    b = std::move(out);
  }

 private:
  void statement(vm::Statement& st, vm::Body& out) {
    if (auto* inst = std::get_if<isa::Instruction>(&st.node)) {
      for (auto& op : inst->operands) simplify_all(op.index);
      if (inst->attrs.shape) simplify_all(*inst->attrs.shape);
      if (inst->attrs.strides) simplify_all(*inst->attrs.strides);
      out.push_back(std::move(st));
    } else if (auto* let = std::get_if<vm::Let>(&st.node)) {
      let->value = simplify(let->value);
      out.push_back(std::move(st));
    } else if (auto* loop = std::get_if<vm::For>(&st.node)) {
      loop->begin = simplify(loop->begin);
      loop->end = simplify(loop->end);
      loop->step = simplify(loop->step);
      body(loop->body);
      // Hoist lets that use neither the loop variable nor anything the loop defines.
      std::set<std::string> loop_defined = {loop->var};
      vm::Body kept;
      for (auto& inner : loop->body) {
        if (auto* let = std::get_if<vm::Let>(&inner.node)) {
          std::set<std::string> used;
          isa::collect_variables(let->value, used);
          bool invariant = !can_fail(let->value);
          for (const auto& u : used) invariant = invariant && !loop_defined.count(u);
          if (invariant) {
            out.push_back(std::move(inner));
            continue;
          }
          loop_defined.insert(let->name);
        }
        kept.push_back(std::move(inner));
      }
      loop->body = std::move(kept);
      out.push_back(std::move(st));
    } else if (auto* branch = std::get_if<vm::If>(&st.node)) {
      branch->condition = simplify(branch->condition);
      body(branch->then_body);
      body(branch->else_body);
      if (branch->condition.is_constant()) {  // the branch taken, inline
        auto& taken = branch->condition.constant() != 0 ? branch->then_body : branch->else_body;
        for (auto& inner : taken) out.push_back(std::move(inner));
      } else {
        out.push_back(std::move(st));
      }
    }
  }
};

}  // namespace

Expr simplify(const Expr& e) {
  switch (e.op()) {
    case ExprOp::Const:
    case ExprOp::Var: return e;
    case ExprOp::Neg: {
      const Expr a = simplify(e.lhs());
      if (a.is_constant() && a.constant() != INT64_MIN) return Expr(-a.constant());
      if (a.op() == ExprOp::Neg) return a.lhs();
      return -a;
    }
    case ExprOp::Not: {
      const Expr a = simplify(e.lhs());
      if (a.is_constant()) return Expr(a.constant() == 0 ? 1 : 0);
      return !a;
    }
    default: break;
  }
  const Expr a = simplify(e.lhs()), b = simplify(e.rhs());
  if (a.is_constant() && b.is_constant()) {
    try {
      return Expr(isa::evaluate(Expr::make(e.op(), a, b), [](const std::string&) { return std::optional<std::int64_t>(); }));
    } catch (const Error&) {
      return Expr::make(e.op(), a, b);  // overflow or division by zero: keep it for the run-time error
    }
  }
  switch (e.op()) {
    case ExprOp::Add:
      if (is(a, 0)) return b;
      if (is(b, 0)) return a;
      // (x + c1) + c2 -> x + (c1 + c2)
      if (b.is_constant() && a.op() == ExprOp::Add && a.rhs().is_constant()) return simplify(a.lhs() + Expr(a.rhs().constant() + b.constant()));
      break;
    case ExprOp::Sub:
      if (is(b, 0)) return a;
      if (a == b) return Expr(0);
      break;
    case ExprOp::Mul:
      if (is(a, 0) || is(b, 0)) return Expr(0);
      if (is(a, 1)) return b;
      if (is(b, 1)) return a;
      break;
    case ExprOp::Div:
    case ExprOp::CeilDiv:
      if (is(b, 1)) return a;
      break;
    case ExprOp::Mod:
      if (is(b, 1)) return Expr(0);
      break;
    case ExprOp::Min:
    case ExprOp::Max:
      if (a == b) return a;
      break;
    case ExprOp::And:
      if (a.is_constant()) return a.constant() == 0 ? Expr(0) : simplify(ne(b, 0));
      if (b.is_constant() && b.constant() != 0) return simplify(ne(a, 0));
      break;
    case ExprOp::Or:
      if (a.is_constant()) return a.constant() != 0 ? Expr(1) : simplify(ne(b, 0));
      break;
    default: break;
  }
  return Expr::make(e.op(), a, b);
}

vm::Program simplify(const vm::Program& program, const SimplifyOptions&) {
  vm::Program out = program;
  simplify_all(out.grid);
  Simplifier().body(out.body);
  vm::verify(out);
  return out;
}

}  // namespace anybit::passes
