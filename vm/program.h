// The VM program: one kernel written at thread-block level (DESIGN.md "The VM").
//
// Every value is block-level; which thread holds what is the business of layouts. Tensor values are
// named %name and defined once (SSA); register tiles made by alloc_register are mutable through dot and
// assign. Scalars (parameters, let, loop variables, blockIdx.x/y/z) are 64-bit integers.
#pragma once

#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "isa/instructions.h"

namespace anybit::vm {

using isa::DataType;
using isa::Expr;
using isa::Instruction;
using isa::Opcode;
using isa::TensorType;

enum class ParamKind { Pointer, I32, I64 };

struct Param {
  std::string name;
  ParamKind kind = ParamKind::I32;
  DataType dtype;  // element type of a pointer
  friend bool operator==(const Param&, const Param&) = default;
};

struct Statement;
using Body = std::vector<Statement>;

struct Let {
  std::string name;
  Expr value;
  friend bool operator==(const Let&, const Let&) = default;
};

struct For {
  std::string var;
  Expr begin, end, step = Expr(1);
  int unroll = 1;
  Body body;
  friend bool operator==(const For&, const For&);
};

struct If {
  Expr condition;
  Body then_body, else_body;
  friend bool operator==(const If&, const If&);
};

struct Statement {
  std::variant<Instruction, Let, For, If> node;
  std::string location;  // of lets, loops and ifs (instructions carry their own)
  friend bool operator==(const Statement& a, const Statement& b) { return a.node == b.node; }
};

inline bool operator==(const For& a, const For& b) {
  return a.var == b.var && a.begin == b.begin && a.end == b.end && a.step == b.step && a.unroll == b.unroll &&
         a.body == b.body;
}
inline bool operator==(const If& a, const If& b) {
  return a.condition == b.condition && a.then_body == b.then_body && a.else_body == b.else_body;
}

struct Program {
  std::string name;
  std::vector<Param> params;
  std::vector<Expr> grid;  // 1 to 3 dimensions (x, y, z)
  int warps = 1;
  Body body;

  std::int64_t threads() const { return std::int64_t{warps} * 32; }
  const Param* find_param(const std::string& n) const;
  friend bool operator==(const Program&, const Program&) = default;
};

std::string print(const Program& p);                 // printer.cpp: canonical .vm text
std::string print(const Instruction& inst);          // one instruction's line, without indentation
Program parse(std::string_view text, std::string_view file = "<input>");  // parser.cpp

}  // namespace anybit::vm
