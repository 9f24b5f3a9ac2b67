// Scalar expressions: the range analysis the CUDA backend uses to choose 32-bit index arithmetic.
#include <doctest/doctest.h>

#include <random>

#include "isa/expr.h"

using namespace anybit::isa;

namespace {

// A random expression over the variables a and b, with small constants (some negative).
Expr random_expr(std::mt19937_64& rng, int depth) {
  std::uniform_int_distribution<int> pick(0, 15);
  const int k = depth == 0 ? pick(rng) % 3 : pick(rng);
  const auto constant = [&] { return Expr(std::uniform_int_distribution<std::int64_t>(-9, 9)(rng)); };
  switch (k) {
    case 0: return Expr::var("a");
    case 1: return Expr::var("b");
    case 2: return constant();
    default: break;
  }
  const Expr x = random_expr(rng, depth - 1), y = random_expr(rng, depth - 1);
  switch (k) {
    case 3: return x + y;
    case 4: return x - y;
    case 5: return x * y;
    case 6: return x / y;
    case 7: return x % y;
    case 8: return ceil_div(x, y);
    case 9: return min(x, y);
    case 10: return max(x, y);
    case 11: return -x;
    case 12: return x < y;
    case 13: return eq(x, y) || (x >= y);
    default: return x * constant() + y;
  }
}

}  // namespace

TEST_CASE("range_of contains every value the expression takes (brute force over the variables' ranges)") {
  std::mt19937_64 rng(7);
  const Interval ra{-5, 7}, rb{1, 12};
  const RangeLookup ranges = [&](const std::string& n) -> std::optional<Interval> {
    return n == "a" ? ra : n == "b" ? rb : std::optional<Interval>{};
  };
  int checked = 0;
  for (int t = 0; t < 400; ++t) {
    const Expr e = random_expr(rng, 3);
    const Interval r = range_of(e, ranges);
    CAPTURE(e.to_string());
    for (std::int64_t a = ra.lo; a <= ra.hi; ++a)
      for (std::int64_t b = rb.lo; b <= rb.hi; ++b) {
        std::int64_t v = 0;
        try {
          v = evaluate(e, [&](const std::string& n) -> std::optional<std::int64_t> { return n == "a" ? a : b; });
        } catch (const std::exception&) {
          continue;  // division by zero: no value
        }
        ++checked;
        CHECK(v >= r.lo);
        CHECK(v <= r.hi);
      }
  }
  CHECK(checked > 20000);
}

TEST_CASE("range_of: the index arithmetic of a K loop fits in 32 bits, products of two dimensions do not") {
  const RangeLookup dims = [](const std::string& n) -> std::optional<Interval> {
    if (n == "K" || n == "N") return Interval{0, INT32_MAX};
    if (n == "z") return Interval{0, 65535};
    return std::nullopt;
  };
  const Expr K = Expr::var("K"), N = Expr::var("N"), z = Expr::var("z");
  CHECK(range_of(K / 64, dims) == Interval{0, INT32_MAX / 64});
  CHECK(range_of(ceil_div(K / 64, 4), dims) == Interval{0, (INT32_MAX / 64 + 3) / 4});
  CHECK(range_of((K / 64) % 3, dims) == Interval{0, 2});
  CHECK(range_of(Expr(5) % 8, dims) == Interval{5, 5});
  CHECK(range_of(K / 64, dims).fits_i32());
  CHECK_FALSE(range_of(N * K, dims).fits_i32());
  CHECK_FALSE(range_of(z * ceil_div(K / 64, 4), dims).fits_i32());
  // min() with a 32-bit bound brings a wide product back into range.
  CHECK(range_of(min(K / 64, z * ceil_div(K / 64, 4)), dims) == Interval{0, INT32_MAX / 64});
  // Unknown names and divisors that may be zero give the full range.
  CHECK(range_of(Expr::var("q"), dims) == Interval::full());
  CHECK(range_of(K / N, dims) == Interval::full());
  // Bounds saturate instead of wrapping.
  const Expr huge = Expr(INT64_MAX) + K;
  CHECK(range_of(huge, dims).hi == INT64_MAX);
  CHECK(range_of(-Expr(INT64_MIN), dims).hi == INT64_MAX);
}
