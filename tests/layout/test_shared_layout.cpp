#include <doctest/doctest.h>

#include <set>

#include "isa/error.h"
#include "layout/shared_layout.h"

using namespace anybit::layout;

TEST_CASE("strided layouts compute offsets from strides") {
  const SharedLayout r = SharedLayout::row_major({4, 8}), c = SharedLayout::column_major({4, 8});
  const Shape idx = {2, 5};
  CHECK(r.offset(idx) == 2 * 8 + 5);
  CHECK(c.offset(idx) == 2 + 5 * 4);
  CHECK(r.span() == 32);
  CHECK(SharedLayout({4, 8}, {16, 1}).span() == 3 * 16 + 8);  // padded rows
}

TEST_CASE("the XOR swizzle is a bijection on every tile") {
  for (int bits = 1; bits <= 3; ++bits)
    for (int base = 0; base <= 4; ++base)
      for (int shift = bits; shift <= 4; ++shift) {
        const SharedLayout l = SharedLayout::row_major({32, 64}, Swizzle{bits, base, shift});
        std::set<std::int64_t> offsets;
        for (std::int64_t i = 0; i < 32; ++i)
          for (std::int64_t j = 0; j < 64; ++j) {
            const Shape idx = {i, j};
            const auto o = l.offset(idx);
            CHECK(o < l.span());
            offsets.insert(o);
          }
        CHECK(offsets.size() == 32u * 64u);
        CHECK(*offsets.rbegin() == 32 * 64 - 1);  // a permutation of 0..size-1
      }
}

TEST_CASE("128-byte-row swizzle puts the 8 rows of an ldmatrix 8x8 in distinct bank groups") {
  // f16 tile with 64-element (128-byte) rows; 16-byte chunks are 8 elements.
  const SharedLayout l = SharedLayout::row_major({64, 64}, Swizzle{3, 3, 3});
  for (std::int64_t row0 = 0; row0 < 64; row0 += 8)
    for (std::int64_t chunk = 0; chunk < 8; ++chunk) {
      std::set<std::int64_t> bank_groups;
      for (std::int64_t r = 0; r < 8; ++r) {
        const Shape idx = {row0 + r, chunk * 8};
        const std::int64_t byte = l.offset(idx) * 2;
        CHECK(byte % 16 == 0);  // 16-byte chunks stay aligned
        bank_groups.insert((byte / 16) % 8);
      }
      CHECK(bank_groups.size() == 8u);
    }
  // Without the swizzle all 8 rows hit the same bank group.
  const SharedLayout plain = SharedLayout::row_major({64, 64});
  std::set<std::int64_t> groups;
  for (std::int64_t r = 0; r < 8; ++r) groups.insert((plain.offset(Shape{r, 0}) * 2 / 16) % 8);
  CHECK(groups.size() == 1u);
}

TEST_CASE("shared layout text round-trips and errors are clear") {
  for (const SharedLayout& l : {SharedLayout::row_major({64, 32}), SharedLayout::column_major({16, 8}),
                                SharedLayout({4, 8}, {16, 1}), SharedLayout::row_major({64, 64}, Swizzle{3, 3, 3})}) {
    CAPTURE(l.to_string());
    CHECK(parse_shared_layout(l.to_string()) == l);
  }
  CHECK(SharedLayout::row_major({64, 64}, Swizzle{3, 3, 3}).to_string() == "swizzle(3,3,3, row_major(64,64))");
  CHECK_THROWS_WITH_AS(parse_shared_layout("row_major(64,"), doctest::Contains("column 14"), anybit::Error);
  CHECK_THROWS_WITH_AS(parse_shared_layout("swizzle(3,3,1, row_major(8,8))"), doctest::Contains("shift >= bits"),
                       anybit::Error);
  CHECK_THROWS_WITH_AS(parse_shared_layout("strided((4,4),(1))"), doctest::Contains("2 dimensions but 1 strides"),
                       anybit::Error);
}
