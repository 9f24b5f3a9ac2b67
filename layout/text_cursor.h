// A cursor over a one-line expression for the layout parsers: whitespace skipping, single-character
// tokens, identifiers and bounded integers, with errors that quote the text and give the column.
#pragma once

#include <cctype>
#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "isa/error.h"

namespace anybit::layout {

class TextCursor {
 public:
  // `what` names the text in errors: "layout", "shared layout".
  TextCursor(std::string_view text, std::string_view what) : text_(text), what_(what) {}

  [[noreturn]] void fail(const std::string& expected) const {
    const std::string found = pos_ < text_.size() ? fmt::format("'{}'", printable(text_.substr(pos_), 12)) : "the end";
    throw Error(fmt::format("{} '{}': at column {}: expected {}, found {}", what_, printable(text_, 120), pos_ + 1,
                            expected, found));
  }
  void skip_space() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  bool at_end() {
    skip_space();
    return pos_ == text_.size();
  }
  // The next non-space character, or '\0' at the end.
  char peek() {
    skip_space();
    return pos_ < text_.size() ? text_[pos_] : '\0';
  }
  bool accept(char c) {
    if (peek() == c && c != '\0') return ++pos_, true;
    return false;
  }
  void expect(char c) {
    if (!accept(c)) fail(fmt::format("'{}'", c));
  }
  std::string identifier() {
    skip_space();
    const std::size_t start = pos_;
    while (pos_ < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_')) ++pos_;
    return std::string(text_.substr(start, pos_ - start));
  }
  // An integer in [min, max]; `expected` describes it in the error.
  std::int64_t integer(std::int64_t min, std::int64_t max, const std::string& expected) {
    skip_space();
    std::int64_t value = 0;
    auto [ptr, ec] = std::from_chars(text_.data() + pos_, text_.data() + text_.size(), value);
    if (ec != std::errc() || value < min || value > max) fail(expected);
    pos_ = static_cast<std::size_t>(ptr - text_.data());
    return value;
  }
  // "(a, b, ...)" of integers in [min, max]; "()" is empty.
  std::vector<std::int64_t> integer_list(std::int64_t min, std::int64_t max, const std::string& expected) {
    std::vector<std::int64_t> out;
    expect('(');
    if (accept(')')) return out;
    do out.push_back(integer(min, max, expected));
    while (accept(','));
    expect(')');
    return out;
  }
  std::size_t position() const { return pos_; }
  void rewind(std::size_t pos) { pos_ = pos; }
  // Consumes one character without skipping space (for prefixed tokens such as m3, r2).
  char take() { return pos_ < text_.size() ? text_[pos_++] : '\0'; }

 private:
  std::string_view text_;
  std::string_view what_;
  std::size_t pos_ = 0;
};

}  // namespace anybit::layout
