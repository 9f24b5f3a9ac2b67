// Canonical .vm text. The grammar (parser.cpp reads exactly this):
//
//   program NAME(PARAM, ...) grid(EXPR[, EXPR[, EXPR]]) warps(N) { STATEMENT* }
//   PARAM      := NAME: ptr<DTYPE> | NAME: i32 | NAME: i64
//   STATEMENT  := [%NAME =] OPCODE [OPERAND, ...] [: TYPE] [{ATTR, ...}]      (one per line)
//               | let NAME = EXPR
//               | for NAME in range(EXPR, EXPR[, EXPR]) [unroll(N)] { STATEMENT* }
//               | if EXPR { STATEMENT* } [else { STATEMENT* }]
//   OPERAND    := %NAME[EXPR, ...] | %NAME | NAME (pointer parameter)
//   TYPE       := DTYPE[N, ...] [@ REGISTER_LAYOUT] | shared DTYPE[N, ...] @ SHARED_LAYOUT
//   ATTR       := dtype=DTYPE | shape=[EXPR, ...] | strides=[EXPR, ...] | dims=[N, ...] | op=NAME | n=N
//               | init=NUMBER | masked | masked=[D, ...] | exp=N | finite
#include <fmt/format.h>

#include "vm/program.h"

namespace anybit::vm {

namespace {

std::string exprs(const std::vector<Expr>& list) {
  std::vector<std::string> parts;
  for (const Expr& e : list) parts.push_back(e.to_string());
  return fmt::format("[{}]", fmt::join(parts, ", "));
}

std::string type_text(const TensorType& t) {
  if (t.scope == isa::Scope::Shared)
    return fmt::format("shared {}[{}] @ {}", t.dtype.name(), fmt::join(t.shape, ","), t.shared->to_string());
  return t.to_string();
}

std::string instruction_text(const Instruction& inst) {
  const auto& info = isa::info(inst.opcode);
  std::string s = inst.result.empty() ? "" : "%" + inst.result + " = ";
  s += info.name;
  std::vector<std::string> operands;
  for (std::size_t i = 0; i < inst.operands.size(); ++i) {
    const auto& op = inst.operands[i];
    std::string text = info.operands[i] == isa::OperandKind::Param ? op.name : "%" + op.name;
    if (info.operands[i] == isa::OperandKind::IndexedTensor) text += exprs(op.index);
    operands.push_back(text);
  }
  if (!operands.empty()) s += " " + fmt::format("{}", fmt::join(operands, ", "));
  if (inst.type) s += " : " + type_text(*inst.type);
  std::vector<std::string> attrs;
  const auto& a = inst.attrs;
  if (a.dtype) attrs.push_back("dtype=" + a.dtype->name());
  if (a.shape) attrs.push_back("shape=" + exprs(*a.shape));
  if (a.strides) attrs.push_back("strides=" + exprs(*a.strides));
  if (a.dims) attrs.push_back(fmt::format("dims=[{}]", fmt::join(*a.dims, ", ")));
  if (a.op) attrs.push_back("op=" + *a.op);
  if (a.n) attrs.push_back(fmt::format("n={}", *a.n));
  if (a.init) attrs.push_back(fmt::format("init={}", *a.init));
  if (a.masked)
    attrs.push_back(a.masked_dims.empty() ? std::string("masked") : fmt::format("masked=[{}]", fmt::join(a.masked_dims, ", ")));
  if (a.exp) attrs.push_back(fmt::format("exp={}", *a.exp));
  if (a.finite) attrs.push_back("finite");
  if (!attrs.empty()) s += fmt::format(" {{{}}}", fmt::join(attrs, ", "));
  return s;
}

void print_body(const Body& body, int depth, std::string& out) {
  const std::string indent(2 * depth, ' ');
  for (const Statement& st : body) {
    if (const auto* inst = std::get_if<Instruction>(&st.node)) {
      out += indent + instruction_text(*inst) + "\n";
    } else if (const auto* let = std::get_if<Let>(&st.node)) {
      out += fmt::format("{}let {} = {}\n", indent, let->name, let->value.to_string());
    } else if (const auto* loop = std::get_if<For>(&st.node)) {
      out += fmt::format("{}for {} in range({}, {}", indent, loop->var, loop->begin.to_string(), loop->end.to_string());
      if (!(loop->step == Expr(1))) out += ", " + loop->step.to_string();
      out += ")";
      if (loop->unroll != 1) out += fmt::format(" unroll({})", loop->unroll);
      out += " {\n";
      print_body(loop->body, depth + 1, out);
      out += indent + "}\n";
    } else if (const auto* branch = std::get_if<If>(&st.node)) {
      out += fmt::format("{}if {} {{\n", indent, branch->condition.to_string());
      print_body(branch->then_body, depth + 1, out);
      if (!branch->else_body.empty()) {
        out += indent + "} else {\n";
        print_body(branch->else_body, depth + 1, out);
      }
      out += indent + "}\n";
    }
  }
}

std::string param_text(const Param& p) {
  switch (p.kind) {
    case ParamKind::Pointer: return fmt::format("{}: ptr<{}>", p.name, p.dtype.name());
    case ParamKind::I32: return p.name + ": i32";
    case ParamKind::I64: return p.name + ": i64";
  }
  return p.name;
}

}  // namespace

std::string print(const Instruction& inst) { return instruction_text(inst); }

std::string print(const Program& p) {
  std::vector<std::string> params, grid;
  for (const Param& q : p.params) params.push_back(param_text(q));
  for (const Expr& e : p.grid) grid.push_back(e.to_string());
  std::string out = fmt::format("program {}({}) grid({}) warps({}) {{\n", p.name, fmt::join(params, ", "),
                                fmt::join(grid, ", "), p.warps);
  print_body(p.body, 1, out);
  out += "}\n";
  return out;
}

}  // namespace anybit::vm
