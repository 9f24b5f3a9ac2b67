#include "layout/shared_layout.h"

#include <cctype>
#include <charconv>

#include "isa/error.h"

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
  explicit SharedParser(std::string_view text) : text_(text) {}
  SharedLayout parse() {
    SharedLayout l = layout();
    skip();
    if (pos_ != text_.size()) fail("the end of the shared layout");
    return l;
  }

 private:
  [[noreturn]] void fail(const std::string& expected) const {
    std::string found = pos_ < text_.size() ? fmt::format("'{}'", text_.substr(pos_, 12)) : "the end";
    throw Error(
        fmt::format("shared layout '{}': at column {}: expected {}, found {}", text_, pos_ + 1, expected, found));
  }
  void skip() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  bool accept(char c) {
    skip();
    if (pos_ < text_.size() && text_[pos_] == c) return ++pos_, true;
    return false;
  }
  void expect(char c) {
    if (!accept(c)) fail(fmt::format("'{}'", c));
  }
  std::int64_t integer(std::int64_t min) {
    skip();
    std::int64_t v = 0;
    auto [ptr, ec] = std::from_chars(text_.data() + pos_, text_.data() + text_.size(), v);
    if (ec != std::errc() || v < min || v > (std::int64_t{1} << 40)) fail(fmt::format("an integer >= {}", min));
    pos_ = ptr - text_.data();
    return v;
  }
  Shape list(std::int64_t min) {
    Shape out;
    expect('(');
    if (accept(')')) return out;
    do out.push_back(integer(min));
    while (accept(','));
    expect(')');
    return out;
  }
  SharedLayout layout() {
    skip();
    const std::size_t start = pos_;
    while (pos_ < text_.size() && (std::isalpha(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_'))
      ++pos_;
    const std::string_view name = text_.substr(start, pos_ - start);
    if (name == "row_major") return SharedLayout::row_major(list(1));
    if (name == "column_major") return SharedLayout::column_major(list(1));
    if (name == "strided") {
      expect('(');
      Shape shape = list(1);
      expect(',');
      Shape strides = list(0);
      expect(')');
      return SharedLayout(shape, strides);
    }
    if (name == "swizzle") {
      expect('(');
      Swizzle s;
      s.bits = static_cast<int>(integer(0));
      expect(',');
      s.base = static_cast<int>(integer(0));
      expect(',');
      s.shift = static_cast<int>(integer(0));
      expect(',');
      SharedLayout inner = layout();
      expect(')');
      return SharedLayout(inner.shape(), inner.strides(), s);
    }
    pos_ = start;
    fail("row_major, column_major, strided or swizzle");
  }
  std::string_view text_;
  std::size_t pos_ = 0;
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
