// The instruction table and the Instruction IR node. Adding an instruction is one line in
// instructions.def, its check_ function in instructions.cpp, its semantics in the interpreter.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "isa/tensor_type.h"

namespace anybit::isa {

enum class Opcode {
#define X(e, ...) e,
#include "isa/instructions.def"
#undef X
};

enum Attr : unsigned { DTYPE = 1, SHAPE = 2, STRIDES = 4, DIMS = 8, OP = 16, N = 32, INIT = 64, MASKED = 128, EXP = 256, FINITE = 512 };
inline constexpr unsigned kLastAttr = FINITE;  // the highest bit: loops over every attribute stop here
enum class TypeDecl { None, Register, Shared, OptionalRegister };

// One operand: a tensor value (%name) or a pointer parameter (name), with a tile offset for T[] kinds.
struct Operand {
  std::string name;
  std::vector<Expr> index;
  friend bool operator==(const Operand&, const Operand&) = default;
};

struct Attributes {
  std::optional<DataType> dtype;
  std::optional<std::vector<Expr>> shape, strides;
  std::optional<std::vector<int>> dims;
  std::optional<std::string> op;
  std::optional<std::int64_t> n;
  std::optional<double> init;
  bool masked = false;
  // masked: the dimensions of the global view an access may leave (ascending; empty: every dimension). An
  // element outside the view along another dimension is an error, and compiled code tests only these.
  std::vector<int> masked_dims;
  std::optional<std::int64_t> exp;  // cast: the value times 2^exp (an exact rescale; the type rule checks it)
  // cast: the source holds no NaN or infinite code (the interpreter checks it), so a decode may skip their
  // patches; what such a code becomes in compiled code is unspecified.
  bool finite = false;
  friend bool operator==(const Attributes&, const Attributes&) = default;
};

struct Instruction {
  Opcode opcode = Opcode::SyncThreads;
  std::string result;                 // empty when the instruction has none
  std::vector<Operand> operands;
  std::optional<TensorType> type;     // declared type (TypeDecl::Register/Shared/OptionalRegister)
  Attributes attrs;
  std::string location;               // "line:col" of .vm text or "file:line" of a builder call; not compared

  friend bool operator==(const Instruction& a, const Instruction& b) {
    return a.opcode == b.opcode && a.result == b.result && a.operands == b.operands && a.type == b.type &&
           a.attrs == b.attrs;
  }
};

enum class OperandKind { Param, Tensor, IndexedTensor };

struct InstructionInfo {
  Opcode opcode;
  const char* name;
  std::vector<OperandKind> operands;
  bool has_result;
  TypeDecl declares;
  unsigned allowed_attrs, required_attrs;
  const char* summary;
};

const InstructionInfo& info(Opcode op);
bool has_attribute(const Attributes& a, Attr which);
// Whether a masked access bounds-tests (and zero-fills along) dimension d of its global view.
bool masked_along(const Attributes& a, int d);
const std::vector<InstructionInfo>& instruction_table();
// The rule for a cast's exp attribute: an empty string when every finite value of `from` times 2^exp is a
// value of `to` (so the cast rounds nothing), else why not, naming the first code that fails.
std::string check_exact_rescale(DataType from, DataType to, std::int64_t exp);
std::optional<Opcode> find_opcode(std::string_view name);
const char* attr_name(Attr a);

// What a check sees: the instruction, the types of its tensor operands (nullptr for a parameter
// operand), the pointer parameter's element type for global_view, and the block's thread count.
struct CheckInput {
  const Instruction& inst;
  std::vector<const TensorType*> operand_types;
  std::optional<DataType> param_dtype;
  std::int64_t threads = 0;
};

// Applies the instruction's type rule: the result type, or an error message (without location) naming
// the problem and what would fix it. Operand count, kinds and attributes must already match the table.
struct CheckResult {
  std::optional<TensorType> type;
  std::string error;
};
CheckResult check_instruction(const CheckInput& input);

// Elementwise instructions (neg .. where): operands and result share one shape and layout.
bool is_elementwise(Opcode op);

// Register tiles the instruction may update in place (dot's accumulator, assign's destination).
std::optional<std::size_t> updated_operand(Opcode op);

}  // namespace anybit::isa
