#include "passes/ldmatrix.h"

namespace anybit::passes {

using layout::Shape;

std::optional<LdmatrixPlan> plan_ldmatrix(const layout::RegisterLayout& tile, isa::DataType dtype,
                                          const layout::SharedLayout& shared, const std::vector<isa::Expr>& offset,
                                          const Divisibility& div) {
  // The fragments span the last two dimensions; any leading dimensions of the tile have size 1 (a stage
  // index into a multi-buffered shared tile, say).
  const int rank = tile.rank();
  if (dtype.bits() != 16 || rank < 2 || shared.rank() != rank) return std::nullopt;
  const Shape shape = tile.shape();
  for (int d = 0; d + 2 < rank; ++d)
    if (shape[d] != 1) return std::nullopt;
  const int r = rank - 2, c = rank - 1;  // row and column dimensions
  const std::int64_t threads = tile.num_threads(), slots = tile.local_size();
  if (threads % 32 != 0 || slots % 2 != 0) return std::nullopt;
  // Rows the lanes address: 8 contiguous elements (16 bytes), 16-byte aligned.
  if (shared.strides()[c] != 1 || shared.strides()[r] % 8 != 0) return std::nullopt;
  if (!shared.swizzle().identity() && shared.swizzle().base < 3) return std::nullopt;
  if (div.of(offset[c]) % 8 != 0) return std::nullopt;
  for (int d = 0; d < c; ++d)
    if (div.of(offset[d]) * shared.strides()[d] % 8 != 0) return std::nullopt;
  auto rc = [&](std::int64_t thread, std::int64_t slot) {
    const Shape i = tile.logical_index(thread, slot);
    return Shape{i[r], i[c]};
  };
  // Every warp: the lane structure of warp 0, shifted by the warp's origin (a column multiple of 8).
  const Shape origin0 = rc(0, 0);
  for (std::int64_t w = 0; w < threads / 32; ++w) {
    const Shape wo = rc(w * 32, 0);
    if ((wo[1] - origin0[1]) % 8 != 0) return std::nullopt;
    for (std::int64_t lane = 0; lane < 32; ++lane)
      for (std::int64_t s = 0; s < slots; ++s) {
        const Shape a = rc(w * 32 + lane, s), b = rc(lane, s);
        if (a[0] - wo[0] != b[0] - origin0[0] || a[1] - wo[1] != b[1] - origin0[1]) return std::nullopt;
      }
  }
  for (bool trans : {false, true}) {
    LdmatrixPlan plan;
    plan.trans = trans;
    bool ok = true;
    for (std::int64_t q = 0; ok && q < slots / 2; ++q) {
      const Shape origin = rc(0, 2 * q);
      if (origin[1] % 8 != 0) ok = false;
      for (std::int64_t lane = 0; ok && lane < 32; ++lane)
        for (std::int64_t h = 0; ok && h < 2; ++h) {
          const Shape want = trans ? Shape{origin[0] + 2 * (lane % 4) + h, origin[1] + lane / 4}
                                   : Shape{origin[0] + lane / 4, origin[1] + 2 * (lane % 4) + h};
          ok = rc(lane, 2 * q + h) == want;
        }
      plan.origins.push_back({origin[0], origin[1]});
    }
    if (!ok) continue;
    for (std::int64_t left = slots / 2; left > 0;) {
      const int c = left >= 4 ? 4 : left >= 2 ? 2 : 1;
      plan.counts.push_back(c);
      left -= c;
    }
    return plan;
  }
  return std::nullopt;
}

}  // namespace anybit::passes
