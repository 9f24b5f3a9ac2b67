// Warp-level fragment layouts of the tensor-core instructions, in the register layout algebra
// (DESIGN.md "Layouts"; checked lane by lane against the PTX tables in tests/layout/test_mma_layouts.cpp).
// Thread = lane (0..31); local slot = element index within the thread's fragment registers, in register
// order, low half first.
#pragma once

#include <optional>
#include <vector>

#include "layout/register_layout.h"

namespace anybit::layout {

// mma.sync m16n8k16 with f16/bf16 inputs.
RegisterLayout mma_m16n8k16_a();  // 16x16 (m x k): column_local(2,2) * spatial(8,4) * local(1,2)
RegisterLayout mma_m16n8k16_b();  // 16x8  (k x n): local(2,1) * column_spatial(4,8) * local(2,1)
RegisterLayout mma_m16n8k16_c();  // 16x8  (m x n), f32 or f16: local(2,1) * spatial(8,4) * local(1,2)
// mma.sync m16n8k32 with s8/u8 inputs, s32 accumulators (C as m16n8k16_c).
RegisterLayout mma_m16n8k32_a();  // 16x32: column_local(2,2) * spatial(8,4) * local(1,4)
RegisterLayout mma_m16n8k32_b();  // 32x8:  local(2,1) * column_spatial(4,8) * local(4,1)

// The 32-bit registers of a thread's storage of `operand` (elements of `bits` bits) that hold the mma
// fragment `atom` placed at `origin`, for warp `warp`: every lane must hold each of its fragment elements
// itself, in the same local slot on every lane, packed into whole registers in fragment order (for an
// atom-ordered operand these are consecutive; a transposed or permuted tile gathers them). nullopt when
// the operand's lanes do not hold the fragment that way.
std::optional<std::vector<std::int64_t>> fragment_words(const RegisterLayout& operand, const RegisterLayout& atom,
                                                        const Shape& origin, std::int64_t warp, int bits);

}  // namespace anybit::layout
