// Shared-memory layouts: logical index -> element offset, swizzle(sum of index[d] * stride[d]).
//
// The XOR swizzle with parameters (bits, base, shift) maps an offset x to
//   x ^ ((x & (((1 << bits) - 1) << (base + shift))) >> shift)
// i.e. it XORs `bits` bits taken from position base+shift into position base. With f16 elements,
// swizzle(3,3,3) permutes the eight 16-byte chunks of each 128-byte row by the row index, so the eight
// rows an ldmatrix 8x8 reads hit eight distinct bank groups. The swizzle is an involution, hence a
// bijection on offsets.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "layout/register_layout.h"

namespace anybit::layout {

struct Swizzle {
  int bits = 0, base = 0, shift = 0;
  std::int64_t apply(std::int64_t offset) const {
    const std::int64_t mask = ((std::int64_t{1} << bits) - 1) << (base + shift);
    return offset ^ ((offset & mask) >> shift);
  }
  bool identity() const { return bits == 0; }
  friend bool operator==(const Swizzle&, const Swizzle&) = default;
};

class SharedLayout {
 public:
  SharedLayout() = default;
  // anybit::Error for negative strides, bad swizzle parameters or rank mismatch.
  SharedLayout(Shape shape, Shape strides, Swizzle swizzle = {});
  static SharedLayout row_major(const Shape& shape, Swizzle swizzle = {});
  static SharedLayout column_major(const Shape& shape, Swizzle swizzle = {});

  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  const Swizzle& swizzle() const { return swizzle_; }
  int rank() const { return static_cast<int>(shape_.size()); }
  std::int64_t size() const;

  std::int64_t offset(std::span<const std::int64_t> index) const;
  // Elements of storage the layout needs: the largest offset of any index, plus one.
  std::int64_t span() const;

  std::string to_string() const;
  friend bool operator==(const SharedLayout&, const SharedLayout&) = default;

 private:
  Shape shape_, strides_;
  Swizzle swizzle_;
};

// Parses row_major(a,b), column_major(a,b), strided((shape),(strides)), optionally wrapped as
// swizzle(bits,base,shift, LAYOUT).
SharedLayout parse_shared_layout(std::string_view text);

}  // namespace anybit::layout
