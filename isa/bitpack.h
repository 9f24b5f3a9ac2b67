// Dense LSB-first bit streams of N-bit codes (DESIGN.md "Data types and bits"): element i occupies bits
// [i*N, i*N + N) of the stream, bit b of the stream being bit (b % 8) of byte b / 8. Codes of 3, 5, 6 or 7
// bits straddle byte boundaries.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace anybit::isa {

// Bytes needed for `count` codes of `bits` bits: ceil(count * bits / 8).
constexpr std::size_t packed_bytes(std::size_t count, int bits) { return (count * bits + 7) / 8; }

// Reads `bits` bits (1..32) starting at stream bit `bit_offset`.
std::uint32_t read_bits(std::span<const std::uint8_t> stream, std::size_t bit_offset, int bits);
// Writes the low `bits` bits of `value` at stream bit `bit_offset`, leaving every other bit unchanged.
void write_bits(std::span<std::uint8_t> stream, std::size_t bit_offset, int bits, std::uint32_t value);

// Reads the code of element `index` (bits in 1..32).
std::uint32_t read_code(std::span<const std::uint8_t> stream, std::size_t index, int bits);
// Writes the low `bits` bits of `code` as element `index`, leaving every other bit unchanged.
void write_code(std::span<std::uint8_t> stream, std::size_t index, int bits, std::uint32_t code);

// Packs codes (only their low `bits` bits are used; bits in 1..8) into a stream of packed_bytes() bytes,
// trailing bits zero.
std::vector<std::uint8_t> pack_codes(std::span<const std::uint8_t> codes, int bits);
// Inverse of pack_codes: the first `count` codes of the stream.
std::vector<std::uint8_t> unpack_codes(std::span<const std::uint8_t> stream, std::size_t count, int bits);

}  // namespace anybit::isa
