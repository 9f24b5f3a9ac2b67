// Vectorization analysis for memory instructions: how many consecutive local slots of a register tile
// one memory access can move, from the contiguity of the tile's layout and the divisibility of offsets,
// strides and shapes.
//
// Requires: a verified program with concrete layouts.
// Guarantees: a width w > 1 is returned only when, for every thread, every group of w slots starting at a
// multiple of w is w consecutive elements along the last dimension, the group's first element offset is a
// multiple of w (so a w-element access is naturally aligned, given a 16-byte-aligned base pointer), and, for
// masked accesses, a group is either wholly inside or wholly outside the view.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "isa/expr.h"
#include "layout/register_layout.h"

namespace anybit::passes {

// Known power-of-two divisors: of integer parameters (caller's promise, e.g. K % 64 == 0) and of loop
// variables and lets (derived while walking the program).
struct Divisibility {
  std::map<std::string, std::int64_t> known;
  // The largest power of two (up to 2^20) that provably divides e.
  std::int64_t of(const isa::Expr& e) const;
};

struct AccessShape {
  int bits = 0;                             // element width
  std::vector<isa::Expr> offset;            // tile offset per dimension
  std::vector<isa::Expr> strides;           // element strides of the memory (global) or constants (shared)
  std::vector<isa::Expr> extent;            // bounds for masked accesses (global view shape), empty if unmasked
  std::int64_t contiguous_limit = 1 << 20;  // most elements the memory keeps contiguous (swizzle chunks)
};

// Slots per access, a power of two with width * bits in {8, 16, 32, 64, 128} bits, or 1.
int vector_width(const layout::RegisterLayout& tile, const AccessShape& access, const Divisibility& div);

// Per-dimension index of local slot `slot` for thread 0 (the thread-independent part of the index).
layout::Shape slot_offset(const layout::RegisterLayout& tile, std::int64_t slot);

}  // namespace anybit::passes
