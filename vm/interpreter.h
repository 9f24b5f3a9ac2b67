// The VM interpreter: runs a verified Program on the CPU, block by block over its grid. It is the
// tile-level reference every compiled kernel is checked against.
//
// Storage model (shared with the CPU simulator): a register tile is, per thread, the dense LSB-first bit
// stream of its local slots (slot l at bit l * dtype bits), so `view` reinterprets those bits exactly as the
// hardware registers would. Shared memory is one byte array per block laid out by the verifier's plan;
// global memory is the caller's host buffers, element i of a view at bit i * dtype bits.
//
// Arithmetic: floats are decoded exactly, the operation is computed in double and rounded once to the
// result type (add, sub, mul, div, min, max are thereby correctly rounded; fma rounds to odd in double
// first, so it is correctly rounded too). min and max return the other operand of a NaN and order
// -0 below +0. Integers compute in 64 bits and wrap to their width; integer
// division truncates toward zero and a zero divisor is an error. cast rounds to nearest even and saturates
// (isa::encode). dot accumulates in f32 in k order (int32 for int8), starting from c, then rounds into c's
// type; reduce accumulates in double and rounds once.
//
// Errors (anybit::Error naming the instruction's location and the element): an access outside a global
// view without {masked}, outside a buffer, or outside a shared tile; reading shared memory a copy_async is
// still filling; integer division by zero; a block ending with copies in flight.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <span>
#include <string>

#include "vm/program.h"
#include "vm/verifier.h"

namespace anybit::vm {

struct Arguments {
  std::map<std::string, std::span<std::uint8_t>> buffers;  // one per pointer parameter
  std::map<std::string, std::int64_t> scalars;             // one per integer parameter
};

struct InterpretOptions {
  VerifyOptions verify;
  std::int64_t max_blocks = std::int64_t{1} << 24;  // refuse grids larger than this
};

void interpret(const Program& program, const Arguments& args, const InterpretOptions& options = {});

// Evaluates the grid (x, y, z) for the given scalar parameters.
std::array<std::int64_t, 3> grid_size(const Program& program, const std::map<std::string, std::int64_t>& scalars);

}  // namespace anybit::vm
