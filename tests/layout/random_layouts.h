// Seeded random register layouts for the law tests.
#pragma once

#include <random>

#include "layout/register_layout.h"

namespace anybit::testing {

// A product of 1..4 random primitives of the given rank (sizes 1, 2, 3, 4 or 8), sometimes with a
// replication factor, kept below 4096 threads x locals.
inline layout::RegisterLayout random_layout(std::mt19937& rng, int rank) {
  using namespace anybit::layout;
  const std::int64_t sizes[] = {1, 2, 2, 3, 4, 8};
  RegisterLayout l = local(Shape(rank, 1));
  const int factors = 1 + static_cast<int>(rng() % 4);
  for (int f = 0; f < factors; ++f) {
    Shape s(rank);
    for (auto& x : s) x = sizes[rng() % 6];
    RegisterLayout p;
    switch (rng() % 5) {
      case 0: p = local(s); break;
      case 1: p = spatial(s); break;
      case 2: p = column_local(s); break;
      case 3: p = column_spatial(s); break;
      default: p = replicated(1 + static_cast<std::int64_t>(rng() % 2)); break;
    }
    RegisterLayout next = rng() % 2 ? l * p : p * l;
    if (next.num_threads() * next.local_size() <= 4096) l = next;
  }
  return l;
}

// Map equality computed from the definition, independent of operator== (which may shortcut through
// canonical forms): same shape, threads, locals and element at every (thread, local).
inline bool same_map(const layout::RegisterLayout& a, const layout::RegisterLayout& b) {
  if (a.shape() != b.shape() || a.num_threads() != b.num_threads() || a.local_size() != b.local_size())
    return false;
  for (std::int64_t t = 0; t < a.num_threads(); ++t)
    for (std::int64_t l = 0; l < a.local_size(); ++l)
      if (a.logical_index(t, l) != b.logical_index(t, l)) return false;
  return true;
}

inline int random_rank(std::mt19937& rng) { return 1 + static_cast<int>(rng() % 3); }

}  // namespace anybit::testing
