#include "isa/bitpack.h"

#include "isa/error.h"

namespace anybit::isa {

std::uint32_t read_code(std::span<const std::uint8_t> stream, std::size_t index, int bits) {
  return read_bits(stream, index * bits, bits);
}

void write_code(std::span<std::uint8_t> stream, std::size_t index, int bits, std::uint32_t code) {
  write_bits(stream, index * bits, bits, code);
}

std::uint32_t read_bits(std::span<const std::uint8_t> stream, std::size_t first_bit, int bits) {
  ANYBIT_ASSERT(bits >= 1 && bits <= 32, "code width {} out of range", bits);
  ANYBIT_ASSERT(first_bit + bits <= stream.size() * 8, "bits [{}, +{}) beyond a {}-byte stream", first_bit,
                bits, stream.size());
  std::uint64_t window = 0;
  const std::size_t first_byte = first_bit / 8, last_byte = (first_bit + bits - 1) / 8;
  for (std::size_t b = last_byte + 1; b-- > first_byte;) window = (window << 8) | stream[b];
  window >>= first_bit % 8;
  return static_cast<std::uint32_t>(window & ((std::uint64_t{1} << bits) - 1));
}

void write_bits(std::span<std::uint8_t> stream, std::size_t first_bit, int bits, std::uint32_t code) {
  ANYBIT_ASSERT(bits >= 1 && bits <= 32, "code width {} out of range", bits);
  ANYBIT_ASSERT(first_bit + bits <= stream.size() * 8, "bits [{}, +{}) beyond a {}-byte stream", first_bit,
                bits, stream.size());
  const std::uint64_t mask = ((std::uint64_t{1} << bits) - 1) << (first_bit % 8);
  const std::uint64_t value = (static_cast<std::uint64_t>(code) << (first_bit % 8)) & mask;
  for (std::size_t b = first_bit / 8, shift = 0; shift < 64 && b <= (first_bit + bits - 1) / 8; ++b, shift += 8) {
    const auto byte_mask = static_cast<std::uint8_t>(mask >> shift);
    stream[b] = static_cast<std::uint8_t>((stream[b] & ~byte_mask) | static_cast<std::uint8_t>(value >> shift));
  }
}

std::vector<std::uint8_t> pack_codes(std::span<const std::uint8_t> codes, int bits) {
  ANYBIT_ASSERT(bits >= 1 && bits <= 8, "pack_codes takes 1..8-bit codes, not {}", bits);
  std::vector<std::uint8_t> stream(packed_bytes(codes.size(), bits), 0);
  for (std::size_t i = 0; i < codes.size(); ++i) write_code(stream, i, bits, codes[i]);
  return stream;
}

std::vector<std::uint8_t> unpack_codes(std::span<const std::uint8_t> stream, std::size_t count, int bits) {
  ANYBIT_ASSERT(bits >= 1 && bits <= 8, "unpack_codes takes 1..8-bit codes, not {}", bits);
  std::vector<std::uint8_t> codes(count);
  for (std::size_t i = 0; i < count; ++i) codes[i] = static_cast<std::uint8_t>(read_code(stream, i, bits));
  return codes;
}

}  // namespace anybit::isa
