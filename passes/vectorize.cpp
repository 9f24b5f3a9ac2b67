#include "passes/vectorize.h"

#include <algorithm>

namespace anybit::passes {

namespace {

constexpr std::int64_t kMaxDivisor = std::int64_t{1} << 20;

std::int64_t lowbit(std::int64_t v) {
  if (v == 0) return kMaxDivisor;
  const std::int64_t a = v < 0 ? -v : v;
  return std::min(a & -a, kMaxDivisor);
}

}  // namespace

std::int64_t Divisibility::of(const isa::Expr& e) const {
  switch (e.op()) {
    case isa::ExprOp::Const: return lowbit(e.constant());
    case isa::ExprOp::Var: {
      auto it = known.find(e.name());
      return it == known.end() ? 1 : std::min(it->second, kMaxDivisor);
    }
    case isa::ExprOp::Mul: return std::min(of(e.lhs()) * of(e.rhs()), kMaxDivisor);
    case isa::ExprOp::Add:
    case isa::ExprOp::Sub:
    case isa::ExprOp::Min:
    case isa::ExprOp::Max: return std::min(of(e.lhs()), of(e.rhs()));
    case isa::ExprOp::Neg: return of(e.lhs());
    default: return 1;
  }
}

layout::Shape slot_offset(const layout::RegisterLayout& tile, std::int64_t slot) { return tile.logical_index(0, slot); }

namespace {

// Unmasked accesses to memory of constant strides (shared tiles): slots whose memory offsets are
// consecutive, across logical dimensions (an mma fragment's values of two 8-column tiles stored side by
// side), w to a group at offsets the groups' width divides in every thread.
int memory_contiguous_width(const layout::RegisterLayout& tile, const AccessShape& a, const Divisibility& div) {
  const int rank = tile.rank();
  const std::int64_t n = tile.local_size();
  std::vector<std::int64_t> strides(static_cast<std::size_t>(rank));
  for (int d = 0; d < rank; ++d) strides[d] = a.strides[d].constant();
  const auto memory = [&](std::int64_t slot) {
    const layout::Shape at = slot_offset(tile, slot);
    std::int64_t o = 0;
    for (int d = 0; d < rank; ++d) o += at[d] * strides[d];
    return o;
  };
  // Divides the thread-dependent part and the tile offset of every thread's memory offset.
  std::int64_t divisor = kMaxDivisor;
  for (int d = 0; d < rank; ++d) {
    std::int64_t weight = 1;
    const auto& dims = tile.dim_modes()[d];
    for (auto it = dims.rbegin(); it != dims.rend(); ++it) {
      if (std::find(tile.spatial().begin(), tile.spatial().end(), *it) != tile.spatial().end())
        divisor = std::min(divisor, lowbit(weight * strides[d]));
      weight *= tile.modes()[*it].size;
    }
    divisor = std::min(divisor, std::min(div.of(a.offset[d]) * lowbit(strides[d]), kMaxDivisor));
  }
  for (int w = 16; w > 1; w /= 2) {
    const std::int64_t bits = static_cast<std::int64_t>(w) * a.bits;
    if (bits < 8 || bits > 128 || (bits & (bits - 1)) != 0) continue;
    if (n % w != 0 || w > a.contiguous_limit || divisor % w != 0) continue;
    bool ok = true;
    for (std::int64_t g = 0; ok && g < n; g += w) {
      const std::int64_t first = memory(g);
      ok = first % w == 0;
      for (int j = 1; ok && j < w; ++j) ok = memory(g + j) == first + j;
    }
    if (ok) return w;
  }
  return 1;
}

}  // namespace

int vector_width(const layout::RegisterLayout& tile, const AccessShape& a, const Divisibility& div) {
  const int rank = tile.rank();
  if (rank == 0) return 1;
  const int last = rank - 1;
  const std::int64_t n = tile.local_size();
  if (a.extent.empty() &&
      std::all_of(a.strides.begin(), a.strides.end(), [](const isa::Expr& s) { return s.is_constant() && s.constant() >= 0; }))
    return memory_contiguous_width(tile, a, div);
  // Thread-dependent part of the last index: every spatial mode's weight in the last dimension.
  std::int64_t thread_divisor = kMaxDivisor;
  {
    const auto& dims = tile.dim_modes()[last];
    std::int64_t weight = 1;
    for (auto it = dims.rbegin(); it != dims.rend(); ++it) {
      const int m = *it;
      if (std::find(tile.spatial().begin(), tile.spatial().end(), m) != tile.spatial().end())
        thread_divisor = std::min(thread_divisor, lowbit(weight));
      weight *= tile.modes()[m].size;
    }
  }
  for (int w = 16; w > 1; w /= 2) {
    const std::int64_t bits = static_cast<std::int64_t>(w) * a.bits;
    if (bits < 8 || bits > 128 || (bits & (bits - 1)) != 0) continue;
    if (n % w != 0 || w > a.contiguous_limit) continue;
    if (!(a.strides[last].is_constant() && a.strides[last].constant() == 1)) continue;
    bool ok = thread_divisor % w == 0 && div.of(a.offset[last]) % w == 0;
    for (int d = 0; ok && d < last; ++d) ok = div.of(a.strides[d]) % w == 0;
    if (ok && !a.extent.empty()) ok = div.of(a.extent[last]) % w == 0;
    for (std::int64_t g = 0; ok && g < n; g += w) {
      const layout::Shape first = slot_offset(tile, g);
      ok = first[last] % w == 0;
      for (int j = 1; ok && j < w; ++j) {
        layout::Shape expected = first;
        expected[last] += j;
        ok = slot_offset(tile, g + j) == expected;
      }
    }
    if (ok) return w;
  }
  return 1;
}

}  // namespace anybit::passes
