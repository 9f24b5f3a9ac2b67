// Layout inference: gives every register tile the program left open a concrete layout.
//
// Requires: a verified program (register layouts may be open).
// Guarantees: every register tile has a layout, the program verifies, and every layout the program gave
// is unchanged. Equal layouts flow through elementwise instructions, cast, where and assign (both ways);
// view between bytes and codes rescales the last dimension's minor local mode by the ratio of the bit
// widths (both ways);
// reduce and reshape derive one side from the other; dot derives a and b from c (each warp holds the A
// rows and B columns of the C fragments it computes, replicated across the other warp dimension) or all
// three from a default warp arrangement; anything still open gets a coalesced default (16-byte vectors
// along the last dimension, threads next, the rest in local slots). Conflicting constraints are an
// anybit::Error naming both instructions and both layouts.
#pragma once

#include "vm/program.h"

namespace anybit::passes {

struct InferLayoutsOptions {};

vm::Program infer_layouts(const vm::Program& program, const InferLayoutsOptions& options = {});

// The coalesced default layout of a tile over `threads` threads.
layout::RegisterLayout default_layout(const layout::Shape& shape, isa::DataType dtype, std::int64_t threads);

}  // namespace anybit::passes
