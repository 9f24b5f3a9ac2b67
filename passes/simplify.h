// Simplification: constant folding and algebraic identities in every scalar expression, branches on
// constant conditions replaced by the branch taken, and lets that do not depend on a loop hoisted out
// of it.
//
// Requires: a verified program.
// Guarantees: the same results on every input (a hoisted let cannot fail: it divides only by nonzero
// constants), a verified program, and no expression with an operator whose operands are all constants
// (except where folding would overflow).
#pragma once

#include "vm/program.h"

namespace anybit::passes {

struct SimplifyOptions {};

isa::Expr simplify(const isa::Expr& e);
vm::Program simplify(const vm::Program& program, const SimplifyOptions& options = {});

}  // namespace anybit::passes
