#include "layout/shared_layout.h"


#include "isa/error.h"
#include "layout/text_cursor.h"

namespace anybit::layout {

namespace {

Shape packed_strides(const Shape& shape, bool row_major) {
  Shape strides(shape.size(), 1);
  std::int64_t stride = 1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    const std::size_t d = row_major ? shape.size() - 1 - i : i;
    strides[d] = stride;
    stride *= shape[d];
  }
  return strides;
}

class SharedParser {
 public:
  explicit SharedParser(std::string_view text) : in_(text, "shared layout") {}
  SharedLayout parse() {
    SharedLayout l = layout();
    if (!in_.at_end()) in_.fail("the end of the shared layout");
    return l;
  }

 private:
  static constexpr std::int64_t kMax = std::int64_t{1} << 40;
  Shape list(std::int64_t min) { return in_.integer_list(min, kMax, fmt::format("an integer >= {}", min)); }
  int parameter() {
    const auto v = static_cast<int>(in_.integer(0, 64, "a swizzle parameter in 0..64"));
    return v;
  }

  SharedLayout layout() {
    const std::size_t start = in_.position();
    const std::string name = in_.identifier();
    if (name == "row_major") return SharedLayout::row_major(list(1));
    if (name == "column_major") return SharedLayout::column_major(list(1));
    if (name == "strided") {
      in_.expect('(');
      Shape shape = list(1);
      in_.expect(',');
      Shape strides = list(0);
      in_.expect(')');
      return SharedLayout(shape, strides);
    }
    if (name == "swizzle") {
      in_.expect('(');
      Swizzle s;
      s.bits = parameter();
      in_.expect(',');
      s.base = parameter();
      in_.expect(',');
      s.shift = parameter();
      in_.expect(',');
      SharedLayout inner = layout();
      in_.expect(')');
      return SharedLayout(inner.shape(), inner.strides(), s);
    }
    in_.rewind(start);
    in_.fail("row_major, column_major, strided or swizzle");
  }

  TextCursor in_;
};

}  // namespace

SharedLayout::SharedLayout(Shape shape, Shape strides, Swizzle swizzle)
    : shape_(std::move(shape)), strides_(std::move(strides)), swizzle_(swizzle) {
  if (shape_.size() != strides_.size())
    throw Error(fmt::format("shared layout has {} dimensions but {} strides", shape_.size(), strides_.size()));
  for (std::size_t d = 0; d < shape_.size(); ++d) {
    if (shape_[d] < 1) throw Error(fmt::format("shared layout dimension {} has size {}", d, shape_[d]));
    if (strides_[d] < 0) throw Error(fmt::format("shared layout dimension {} has negative stride", d));
  }
  if (swizzle_.bits < 0 || swizzle_.base < 0 || swizzle_.shift < 0 || swizzle_.bits > 16 ||
      swizzle_.base + swizzle_.shift + swizzle_.bits > 40 || (swizzle_.bits > 0 && swizzle_.shift < swizzle_.bits))
    throw Error(fmt::format("swizzle({},{},{}) is invalid: need 0 <= bits <= 16, shift >= bits (so the XOR'd bits "
                            "do not overlap their source)",
                            swizzle_.bits, swizzle_.base, swizzle_.shift));
}

SharedLayout SharedLayout::row_major(const Shape& shape, Swizzle swizzle) {
  return SharedLayout(shape, packed_strides(shape, true), swizzle);
}
SharedLayout SharedLayout::column_major(const Shape& shape, Swizzle swizzle) {
  return SharedLayout(shape, packed_strides(shape, false), swizzle);
}

std::int64_t SharedLayout::size() const {
  std::int64_t p = 1;
  for (auto s : shape_) p *= s;
  return p;
}

std::int64_t SharedLayout::offset(std::span<const std::int64_t> index) const {
  ANYBIT_ASSERT(index.size() == shape_.size(), "index of rank {} into a rank-{} shared layout", index.size(),
                shape_.size());
  std::int64_t linear = 0;
  for (std::size_t d = 0; d < shape_.size(); ++d) linear += index[d] * strides_[d];
  return swizzle_.apply(linear);
}

std::int64_t SharedLayout::span() const {
  // Without swizzle the largest offset is at the last index; the swizzle only permutes offsets inside
  // aligned blocks of 2^(base + shift + bits), so rounding up to that block bounds it.
  std::int64_t max_linear = 0;
  for (std::size_t d = 0; d < shape_.size(); ++d) max_linear += (shape_[d] - 1) * strides_[d];
  if (swizzle_.identity()) return max_linear + 1;
  const std::int64_t block = std::int64_t{1} << (swizzle_.base + swizzle_.shift + swizzle_.bits);
  return std::max<std::int64_t>(max_linear + 1, ((max_linear / block) + 1) * block);
}

std::string SharedLayout::to_string() const {
  std::string inner;
  if (strides_ == packed_strides(shape_, true))
    inner = fmt::format("row_major({})", fmt::join(shape_, ","));
  else if (strides_ == packed_strides(shape_, false))
    inner = fmt::format("column_major({})", fmt::join(shape_, ","));
  else
    inner = fmt::format("strided(({}),({}))", fmt::join(shape_, ","), fmt::join(strides_, ","));
  if (swizzle_.identity()) return inner;
  return fmt::format("swizzle({},{},{}, {})", swizzle_.bits, swizzle_.base, swizzle_.shift, inner);
}

SharedLayout parse_shared_layout(std::string_view text) { return SharedParser(text).parse(); }

}  // namespace anybit::layout
