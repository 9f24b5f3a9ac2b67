// The mma fragment layouts reproduce the PTX ISA tables (REFERENCE.md), lane by lane, register by register.
#include <doctest/doctest.h>

#include "layout/mma_layouts.h"

using namespace anybit::layout;

namespace {

// Checks layout(lane, element) == table(lane, element) for all 32 lanes and every fragment element.
template <typename Table>
void check_fragment(const RegisterLayout& l, int elements, Table table) {
  REQUIRE(l.num_threads() == 32);
  REQUIRE(l.local_size() == elements);
  for (int lane = 0; lane < 32; ++lane)
    for (int i = 0; i < elements; ++i) {
      CAPTURE(lane);
      CAPTURE(i);
      const auto [row, col] = table(lane / 4, lane % 4, i);
      CHECK(l.logical_index(lane, i) == Shape{row, col});
    }
}

}  // namespace

TEST_CASE("m16n8k16 f16 fragments match the PTX tables") {
  // A: row g for a0,a1,a4,a5 else g+8; col 2t + (i&1), +8 for i >= 4.
  check_fragment(mma_m16n8k16_a(), 8, [](int g, int t, int i) {
    const bool low_row = i == 0 || i == 1 || i == 4 || i == 5;
    return std::pair<std::int64_t, std::int64_t>{low_row ? g : g + 8, 2 * t + (i & 1) + (i >= 4 ? 8 : 0)};
  });
  // B (k x n): k = 2t + (i&1), +8 for i >= 2; n = g.
  check_fragment(mma_m16n8k16_b(), 4, [](int g, int t, int i) {
    return std::pair<std::int64_t, std::int64_t>{2 * t + (i & 1) + (i >= 2 ? 8 : 0), g};
  });
  // C/D f32: row g + 8 (i >= 2); col 2t + (i&1).
  check_fragment(mma_m16n8k16_c(), 4, [](int g, int t, int i) {
    return std::pair<std::int64_t, std::int64_t>{g + (i >= 2 ? 8 : 0), 2 * t + (i & 1)};
  });
  CHECK(mma_m16n8k16_a().to_string() == "column_local(2,2) * spatial(8,4) * local(1,2)");
  CHECK(mma_m16n8k16_b().to_string() == "local(2,1) * column_spatial(4,8) * local(2,1)");
  CHECK(mma_m16n8k16_c().to_string() == "local(2,1) * spatial(8,4) * local(1,2)");
}

TEST_CASE("m16n8k32 int8 fragments match the PTX tables") {
  // A: row g for i in [0,4) u [8,12) else g+8; col 4t + (i&3), +16 for i >= 8.
  check_fragment(mma_m16n8k32_a(), 16, [](int g, int t, int i) {
    const bool low_row = i < 4 || (i >= 8 && i < 12);
    return std::pair<std::int64_t, std::int64_t>{low_row ? g : g + 8, 4 * t + (i & 3) + (i >= 8 ? 16 : 0)};
  });
  // B: k = 4t + (i&3), +16 for i >= 4; n = g.
  check_fragment(mma_m16n8k32_b(), 8, [](int g, int t, int i) {
    return std::pair<std::int64_t, std::int64_t>{4 * t + (i & 3) + (i >= 4 ? 16 : 0), g};
  });
}
