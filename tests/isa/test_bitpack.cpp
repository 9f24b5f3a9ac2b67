// Dense LSB-first bit packing, checked against a bit-by-bit reference.
#include <doctest/doctest.h>

#include <random>

#include "isa/bitpack.h"

namespace {

// Reference: set stream bit (i*N + j) from bit j of code i, one bit at a time.
std::vector<std::uint8_t> reference_pack(const std::vector<std::uint8_t>& codes, int bits) {
  std::vector<std::uint8_t> out((codes.size() * bits + 7) / 8, 0);
  for (std::size_t i = 0; i < codes.size(); ++i)
    for (int j = 0; j < bits; ++j) {
      const std::size_t bit = i * bits + j;
      if ((codes[i] >> j) & 1) out[bit / 8] |= static_cast<std::uint8_t>(1u << (bit % 8));
    }
  return out;
}

}  // namespace

TEST_CASE("pack/unpack every width on random data and edge values") {
  std::mt19937 rng(42);
  for (int bits = 1; bits <= 8; ++bits) {
    CAPTURE(bits);
    const auto mask = static_cast<std::uint8_t>((1u << bits) - 1);
    for (std::size_t count : {0u, 1u, 2u, 3u, 7u, 8u, 9u, 15u, 16u, 17u, 63u, 64u, 65u, 1000u}) {
      CAPTURE(count);
      std::vector<std::uint8_t> codes(count);
      for (auto& c : codes) c = static_cast<std::uint8_t>(rng()) & mask;
      // edge values: all ones, zero, alternating
      if (count > 2) codes[0] = mask, codes[1] = 0, codes[count - 1] = mask;
      const auto packed = anybit::isa::pack_codes(codes, bits);
      CHECK(packed.size() == anybit::isa::packed_bytes(count, bits));
      CHECK(packed == reference_pack(codes, bits));
      CHECK(anybit::isa::unpack_codes(packed, count, bits) == codes);
    }
    std::vector<std::uint8_t> all_ones(37, mask);
    const auto packed = anybit::isa::pack_codes(all_ones, bits);
    CHECK(packed == reference_pack(all_ones, bits));
  }
}

TEST_CASE("write_code leaves neighbouring codes untouched") {
  for (int bits = 1; bits <= 32; ++bits) {
    std::vector<std::uint8_t> stream(40, 0xFF);
    anybit::isa::write_code(stream, 3, bits, 0);
    for (std::size_t i = 0; i < std::size_t{40 * 8} / bits; ++i) {
      const std::uint32_t expected = i == 3 ? 0u : (bits == 32 ? 0xFFFFFFFFu : (1u << bits) - 1);
      CHECK(anybit::isa::read_code(stream, i, bits) == expected);
    }
  }
  // The high code bits beyond the width are ignored.
  std::vector<std::uint8_t> stream(2, 0);
  anybit::isa::write_code(stream, 1, 3, 0xFF);
  CHECK(stream[0] == 0b00111000);
  CHECK(stream[1] == 0);
}
