// Example programs written with the builder, and plain host references for them. They are the README's
// examples, the main job's demo (vmc demo) and the interpreter's test programs.
#pragma once

#include <cstdint>
#include <vector>

#include "vm/program.h"

namespace anybit::programs {

// c[i] = a[i] + b[i] for i < n (f32), 256 elements per block of 2 warps, tail predicated.
vm::Program vector_add();

// C[M,N] (f32) = A[M,K] (f16, row-major) . B[K,N] (f16, row-major): 4 warps, 32x16 block tiles, K in steps
// of 16 through cp.async into shared memory, mma fragments loaded from shared, tails zero-filled/masked.
vm::Program tiled_matmul();

// One 16x16 mma A fragment per block from packed codes: lane t's 8 codes are bytes [t*N, t*N + N) of the
// block's 32*N bytes (N = code bits), loaded as uint8, viewed as `code` values in the m16n8k16 A layout,
// cast to `out` and stored row-major: out[16*blockIdx.x + row, col].
vm::Program dequant_fragment(isa::DataType code, isa::DataType out);

// Host references (plain loops over the PTX fragment tables, no layouts).
std::vector<float> reference_matmul(const std::vector<float>& a, const std::vector<float>& b, int M, int N, int K);
// Codes of the 16x16 fragment as placed by the PTX A-operand table, per block, row-major.
std::vector<std::uint32_t> reference_fragment_codes(const std::vector<std::uint8_t>& packed, int code_bits, int blocks);

}  // namespace anybit::programs
