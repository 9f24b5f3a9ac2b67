// Selection of ldmatrix for shared -> register loads of 16-bit tiles.
//
// Requires: a 16-bit register tile whose fragments span its last two dimensions (any leading dimensions
// of size 1) and a shared tile of the same rank whose last dimension is contiguous.
// Guarantees: a plan only when every warp holds the same lane structure (offset by a warp origin) and
// every pair of slots (one 32-bit register) of every lane is what ldmatrix.m8n8 (or .trans) puts there for
// some 8x8 block: lane T holds row T/4, columns 2(T%4) and 2(T%4)+1 of the block (.trans: rows 2(T%4) and
// 2(T%4)+1 of column T/4); and every block row the lanes address is 16 contiguous, 16-byte-aligned bytes.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "isa/dtype.h"
#include "layout/shared_layout.h"
#include "passes/vectorize.h"

namespace anybit::passes {

struct LdmatrixPlan {
  bool trans = false;
  // Origin (row, column) of each register's 8x8 block for warp 0, in register order.
  std::vector<std::array<std::int64_t, 2>> origins;
  // Instruction sizes (4, 2 or 1 matrices) covering the registers in order.
  std::vector<int> counts;
};

std::optional<LdmatrixPlan> plan_ldmatrix(const layout::RegisterLayout& tile, isa::DataType dtype,
                                          const layout::SharedLayout& shared, const std::vector<isa::Expr>& offset,
                                          const Divisibility& div);

}  // namespace anybit::passes
