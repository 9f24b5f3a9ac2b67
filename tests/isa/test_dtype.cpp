// Data types: names, and encode/decode of every code against independently built references.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>

#include "isa/dtype.h"
#include "isa/error.h"

using anybit::isa::DataType;
using anybit::isa::decode;
using anybit::isa::encode;

namespace {

// Values of a small float's non-negative codes, built by walking the number line: every step inside a
// binade is one unit in the last place, subnormals share the first normal binade's step.
std::vector<double> walk_small_float(int e, int m) {
  const int bias = (1 << (e - 1)) - 1;
  const double step0 = std::ldexp(1.0, 1 - bias - m);
  std::vector<double> values(std::size_t{1} << (e + m));
  values[0] = 0.0;
  for (std::size_t k = 1; k < values.size(); ++k) {
    const int binade = static_cast<int>((k - 1) >> m);
    values[k] = values[k - 1] + step0 * std::ldexp(1.0, std::max(binade, 1) - 1);
  }
  return values;
}

// Special codes, written from the format definitions (not from the implementation).
bool reference_is_nan(const std::string& name, std::uint32_t magnitude) {
  if (name == "f8e4m3") return magnitude == 0x7F;
  if (name == "f8e5m2") return magnitude > 0x7C;
  return false;
}
bool reference_is_inf(const std::string& name, std::uint32_t magnitude) {
  return name == "f8e5m2" && magnitude == 0x7C;
}

double reference_max(const std::string& name, const std::vector<double>& walk) {
  if (name == "f8e4m3") return 448.0;
  if (name == "f8e5m2") return 57344.0;
  return walk.back();
}

// Nearest finite value by exhaustive search; ties go to the even code; beyond max saturates.
std::uint32_t reference_encode(const std::string& name, int e, int m, double x) {
  const auto walk = walk_small_float(e, m);
  const double max = reference_max(name, walk);
  const std::uint32_t sign = std::signbit(x) ? 1u << (e + m) : 0u;
  const double a = std::min(std::fabs(x), max);
  std::uint32_t best = 0;
  for (std::uint32_t k = 0; k < walk.size(); ++k) {
    if (reference_is_nan(name, k) || reference_is_inf(name, k)) continue;
    const double d = std::fabs(walk[k] - a), best_d = std::fabs(walk[best] - a);
    if (d < best_d || (d == best_d && (k & 1u) == 0)) best = k;
  }
  return sign | best;
}

}  // namespace

TEST_CASE("type names parse and print for every type") {
  const auto& all = anybit::isa::all_dtypes();
  CHECK(all.size() == 3 + 8 + 8 + 3 + 1 + (2 + 3 + 4 + 5 + 6 + 7));  // N-bit floats have N-1 splits
  for (DataType t : all) {
    CAPTURE(t.name());
    CHECK(anybit::isa::parse_dtype(t.name()) == t);
  }
  CHECK(anybit::isa::parse_dtype("f4e2m1") == DataType::small_float(2, 1));
  CHECK(anybit::isa::parse_dtype("f8e4m3").bits() == 8);
  CHECK(anybit::isa::parse_dtype("int3") == DataType::signed_int(3));
  CHECK(anybit::isa::parse_dtype("uint8") == DataType::unsigned_int(8));
  for (const char* bad : {"f4e2m2", "f9e4m4", "f3e0m2", "int9", "uint16", "float", "", "f8e4m3x", "i4",
                          "f2e1m0", "int0", "f8e4m-3", "f4e2"}) {
    CAPTURE(bad);
    CHECK_THROWS_WITH_AS(anybit::isa::parse_dtype(bad), doctest::Contains("valid types: f32, f16, bf16"),
                         anybit::Error);
  }
}

TEST_CASE("every small float code decodes to the walked number line") {
  for (DataType t : anybit::isa::all_small_floats()) {
    const std::string name = t.name();
    CAPTURE(name);
    const auto walk = walk_small_float(t.exponent_bits(), t.mantissa_bits());
    for (std::uint32_t code = 0; code < (1u << t.bits()); ++code) {
      CAPTURE(code);
      const std::uint32_t magnitude = code & ((1u << (t.bits() - 1)) - 1);
      const bool negative = code >> (t.bits() - 1);
      const double value = decode(t, code);
      if (reference_is_nan(name, magnitude)) {
        CHECK(std::isnan(value));
        CHECK(anybit::isa::is_nan_code(t, code));
      } else if (reference_is_inf(name, magnitude)) {
        CHECK(value == (negative ? -INFINITY : INFINITY));
      } else {
        CHECK(value == (negative ? -walk[magnitude] : walk[magnitude]));
        CHECK(std::signbit(value) == negative);
        CHECK(encode(t, value) == code);  // round trip, -0 included
      }
    }
    CHECK(anybit::isa::max_finite(t) == reference_max(name, walk));
  }
}

TEST_CASE("named small floats have their well-known values") {
  const DataType e2m1 = anybit::isa::parse_dtype("f4e2m1");
  const double fp4[] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
  for (std::uint32_t c = 0; c < 8; ++c) CHECK(decode(e2m1, c) == fp4[c]);
  CHECK(anybit::isa::max_finite(anybit::isa::parse_dtype("f6e3m2")) == 28.0);
  CHECK(anybit::isa::max_finite(anybit::isa::parse_dtype("f6e2m3")) == 7.5);
  CHECK(decode(anybit::isa::parse_dtype("f8e4m3"), 0x01) == std::ldexp(1.0, -9));
  CHECK(decode(anybit::isa::parse_dtype("f8e5m2"), 0x01) == std::ldexp(1.0, -16));
  CHECK(decode(anybit::isa::parse_dtype("f4e3m0"), 0x07) == 16.0);
}

TEST_CASE("small float encode matches exhaustive nearest search, ties to even, saturation") {
  std::mt19937 rng(1234);
  for (DataType t : anybit::isa::all_small_floats()) {
    const std::string name = t.name();
    CAPTURE(name);
    const auto walk = walk_small_float(t.exponent_bits(), t.mantissa_bits());
    std::vector<double> probes;
    for (std::size_t k = 0; k + 1 < walk.size(); ++k) {
      probes.push_back((walk[k] + walk[k + 1]) / 2);  // exact ties
      probes.push_back(walk[k] + (walk[k + 1] - walk[k]) * 0.25);
      probes.push_back(walk[k] + (walk[k + 1] - walk[k]) * 0.75);
    }
    std::uniform_real_distribution<double> dist(-2 * walk.back(), 2 * walk.back());
    for (int i = 0; i < 200; ++i) probes.push_back(static_cast<float>(dist(rng)));
    probes.push_back(1e30);
    probes.push_back(-1e30);
    for (double p : probes) {
      for (double x : {p, -p}) {
        CAPTURE(x);
        CHECK(encode(t, x) == reference_encode(name, t.exponent_bits(), t.mantissa_bits(), x));
      }
    }
    // inf saturates; NaN goes to the format's NaN or +0.
    CHECK(decode(t, encode(t, INFINITY)) == reference_max(name, walk));
    CHECK(decode(t, encode(t, -INFINITY)) == -reference_max(name, walk));
    if (name == "f8e4m3" || name == "f8e5m2")
      CHECK(std::isnan(decode(t, encode(t, NAN))));
    else
      CHECK(encode(t, NAN) == 0u);
  }
}

TEST_CASE("f16 every code and encode agree with the compiler's _Float16") {
  const DataType f16 = DataType::f16();
  for (std::uint32_t code = 0; code < 65536; ++code) {
    const auto bits = static_cast<std::uint16_t>(code);
    const _Float16 h = std::bit_cast<_Float16>(bits);
    const double value = decode(f16, code);
    if (std::isnan(static_cast<double>(h))) {
      CHECK(std::isnan(value));
      continue;
    }
    REQUIRE(value == static_cast<double>(h));
    REQUIRE(encode(f16, value) == code);
  }
  std::mt19937 rng(99);
  std::uniform_int_distribution<std::uint32_t> any_bits;
  for (int i = 0; i < 200000; ++i) {
    const float x = std::bit_cast<float>(any_bits(rng));
    if (std::isnan(x)) continue;
    const auto expected = std::bit_cast<std::uint16_t>(static_cast<_Float16>(x));
    CAPTURE(x);
    REQUIRE(encode(f16, x) == expected);
  }
  // Ties: 1 + 2^-11 lies halfway between 1 and 1 + 2^-10, rounds to the even mantissa (1.0).
  CHECK(encode(f16, 1.0 + std::ldexp(1.0, -11)) == 0x3C00u);
  CHECK(encode(f16, 1.0 + 3 * std::ldexp(1.0, -11)) == 0x3C02u);
  CHECK(encode(f16, 65520.0) == 0x7C00u);  // halfway past max rounds to inf (IEEE)
  CHECK(encode(f16, 65519.0) == 0x7BFFu);
}

TEST_CASE("bf16 and f32 decode by bit reinterpretation, encode rounds to nearest even") {
  const DataType bf16 = DataType::bf16();
  for (std::uint32_t code = 0; code < 65536; ++code) {
    const float ref = std::bit_cast<float>(code << 16);
    const double value = decode(bf16, code);
    if (std::isnan(ref)) {
      CHECK(std::isnan(value));
      continue;
    }
    REQUIRE(value == static_cast<double>(ref));
    REQUIRE(encode(bf16, value) == code);
  }
  std::mt19937 rng(7);
  std::uniform_int_distribution<std::uint32_t> any_bits;
  for (int i = 0; i < 200000; ++i) {
    const std::uint32_t u = any_bits(rng);
    const float x = std::bit_cast<float>(u);
    if (std::isnan(x)) continue;
    // Reference RNE on the bit pattern: add 0x7FFF plus the kept LSB, truncate.
    const std::uint32_t expected = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    CAPTURE(x);
    REQUIRE(encode(bf16, x) == expected);
    REQUIRE(encode(DataType::f32(), x) == u);
    REQUIRE(decode(DataType::f32(), u) == static_cast<double>(x));
  }
}

TEST_CASE("integers: every code, round to nearest even, saturation") {
  for (int bits = 1; bits <= 8; ++bits) {
    const DataType s = DataType::signed_int(bits), u = DataType::unsigned_int(bits);
    for (std::uint32_t code = 0; code < (1u << bits); ++code) {
      const double unsigned_value = code;
      const double signed_value = code >= (1u << (bits - 1)) ? static_cast<double>(code) - (1 << bits) : code;
      CHECK(decode(u, code) == unsigned_value);
      CHECK(decode(s, code) == signed_value);
      CHECK(encode(u, unsigned_value) == code);
      CHECK(encode(s, signed_value) == code);
    }
    CHECK(decode(s, encode(s, 1000.0)) == std::ldexp(1.0, bits - 1) - 1);
    CHECK(decode(s, encode(s, -1000.0)) == -std::ldexp(1.0, bits - 1));
    CHECK(encode(u, -3.0) == 0u);
  }
  const DataType i8 = DataType::signed_int(8);
  CHECK(decode(i8, encode(i8, 2.5)) == 2.0);
  CHECK(decode(i8, encode(i8, 3.5)) == 4.0);
  CHECK(decode(i8, encode(i8, -2.5)) == -2.0);
  CHECK(decode(i8, encode(i8, -3.5)) == -4.0);
  CHECK(encode(i8, NAN) == 0u);
  const DataType i32 = DataType::signed_int(32);
  CHECK(decode(i32, encode(i32, -2147483648.0)) == -2147483648.0);
  CHECK(decode(i32, encode(i32, 3e9)) == 2147483647.0);
  CHECK(decode(DataType::unsigned_int(32), 0xFFFFFFFFu) == 4294967295.0);
  CHECK(encode(DataType::boolean(), 0.5) == 1u);
  CHECK(encode(DataType::boolean(), 0.0) == 0u);
}
