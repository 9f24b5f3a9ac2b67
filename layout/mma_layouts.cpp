#include "layout/mma_layouts.h"

#include <algorithm>

namespace anybit::layout {

RegisterLayout mma_m16n8k16_a() { return column_local({2, 2}) * spatial({8, 4}) * local({1, 2}); }
RegisterLayout mma_m16n8k16_b() { return local({2, 1}) * column_spatial({4, 8}) * local({2, 1}); }
RegisterLayout mma_m16n8k16_c() { return local({2, 1}) * spatial({8, 4}) * local({1, 2}); }
RegisterLayout mma_m16n8k32_a() { return column_local({2, 2}) * spatial({8, 4}) * local({1, 4}); }
RegisterLayout mma_m16n8k32_b() { return local({2, 1}) * column_spatial({4, 8}) * local({4, 1}); }

// The 32-bit words of a thread's storage of operand layout `l` that hold the mma fragment `atom` placed at
// `origin`, for warp `warp`: every lane must hold each of its fragment elements itself, in the same local
// slot on every lane, packed into whole words in fragment order. nullopt otherwise.
std::optional<std::vector<std::int64_t>> fragment_words(const RegisterLayout& l, const RegisterLayout& atom,
                                                        const Shape& origin, std::int64_t warp, int bits) {
  const std::int64_t per_word = 32 / bits, slots = atom.local_size();
  std::vector<std::int64_t> locals(static_cast<std::size_t>(slots), -1);
  for (std::int64_t lane = 0; lane < 32; ++lane)
    for (std::int64_t s = 0; s < slots; ++s) {
      Shape e = atom.logical_index(lane, s);
      for (std::size_t d = 0; d < e.size(); ++d) e[d] += origin[d];
      const auto holders = l.threads_of(e);
      if (!std::binary_search(holders.begin(), holders.end(), warp * 32 + lane)) return std::nullopt;
      const std::int64_t local = l.map(e).local;
      if (locals[s] < 0) locals[s] = local;
      else if (locals[s] != local) return std::nullopt;
    }
  std::vector<std::int64_t> words;
  for (std::int64_t s = 0; s < slots; s += per_word) {
    if (locals[s] % per_word) return std::nullopt;
    for (std::int64_t j = 1; j < per_word; ++j)
      if (locals[s + j] != locals[s] + j) return std::nullopt;
    words.push_back(locals[s] / per_word);
  }
  return words;
}

}  // namespace anybit::layout
