#include "isa/dtype.h"

#include <charconv>
#include <cmath>
#include <limits>

#include "isa/error.h"

namespace anybit::isa {

namespace {

constexpr int kMinSmallFloatBits = 3;
constexpr int kMaxSmallFloatBits = 8;

bool is_e4m3fn(DataType t) { return t.is_float() && t.bits() == 8 && t.exponent_bits() == 4; }
bool is_e5m2(DataType t) { return t.is_float() && t.bits() == 8 && t.exponent_bits() == 5; }

// Largest finite code magnitude (code without sign bit) of a float format.
std::uint32_t max_finite_magnitude(DataType t) {
  const int e = t.exponent_bits(), m = t.mantissa_bits();
  const std::uint32_t all_ones = (1u << (e + m)) - 1u;
  if (is_e4m3fn(t)) return all_ones - 1u;  // S.1111.111 is NaN
  if (t.is_ieee() || is_e5m2(t)) return (((1u << e) - 2u) << m) | ((1u << m) - 1u);
  return all_ones;
}

bool parse_int(std::string_view s, int& out) {
  if (s.empty() || s.size() > 3) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

double decode_float(DataType t, std::uint32_t code) {
  const int e_bits = t.exponent_bits(), m_bits = t.mantissa_bits();
  const bool negative = (code >> (t.bits() - 1)) & 1u;
  const std::uint32_t exponent = (code >> m_bits) & ((1u << e_bits) - 1u);
  const std::uint32_t mantissa = code & ((1u << m_bits) - 1u);
  const std::uint32_t exponent_all_ones = (1u << e_bits) - 1u;
  double magnitude;
  if (is_nan_code(t, code)) {
    magnitude = std::numeric_limits<double>::quiet_NaN();
  } else if (exponent == exponent_all_ones && (t.is_ieee() || is_e5m2(t))) {
    magnitude = std::numeric_limits<double>::infinity();
  } else if (exponent == 0) {
    magnitude = std::ldexp(static_cast<double>(mantissa), 1 - t.exponent_bias() - m_bits);
  } else {
    magnitude = std::ldexp(static_cast<double>(mantissa | (1u << m_bits)),
                           static_cast<int>(exponent) - t.exponent_bias() - m_bits);
  }
  return negative ? -magnitude : magnitude;
}

std::uint32_t encode_float(DataType t, double x) {
  const int e_bits = t.exponent_bits(), m_bits = t.mantissa_bits();
  const std::uint32_t sign = std::signbit(x) ? (1u << (t.bits() - 1)) : 0u;
  if (std::isnan(x)) {
    if (t.is_ieee() || is_e5m2(t)) return (((1u << e_bits) - 1u) << m_bits) | (1u << (m_bits - 1));
    if (is_e4m3fn(t)) return 0x7Fu;
    return 0u;
  }
  const std::uint32_t max_magnitude = max_finite_magnitude(t);
  const double a = std::fabs(x);
  if (std::isinf(a)) {
    return sign | (t.is_ieee() ? ((1u << e_bits) - 1u) << m_bits : max_magnitude);
  }
  // Scale |x| so that one unit in the last place of its binade is 1; the scaling is a power of two, so
  // the scaled value is exact and is rounded once, to an integer number of units.
  const int min_normal_exponent = 1 - t.exponent_bias();
  int exponent = min_normal_exponent;
  if (a >= std::ldexp(1.0, min_normal_exponent)) {
    std::frexp(a, &exponent);  // a = f * 2^exponent, f in [0.5, 1)
    exponent -= 1;
  }
  // Subnormals have exponent field 0; normals add the biased exponent. A mantissa that rounded up to
  // 2^(M+1) carries into the exponent field by plain addition.
  auto magnitude_of = [&](double units) {
    auto magnitude = static_cast<std::uint64_t>(units);
    if (units >= std::ldexp(1.0, m_bits))
      magnitude = (static_cast<std::uint64_t>(exponent + t.exponent_bias()) << m_bits) +
                  (magnitude - (std::uint64_t{1} << m_bits));
    return magnitude;
  };
  const double scaled = std::ldexp(a, m_bits - exponent);
  const double below = std::floor(scaled);
  std::uint64_t magnitude = magnitude_of(scaled - below < 0.5 ? below : below + 1.0);
  if (scaled - below == 0.5) {
    // Exact tie: take the neighbour with the even code. For M >= 1 that is the even mantissa; for M = 0
    // formats (f4e3m0, ...) the code's low bit is the exponent's.
    const std::uint64_t down = magnitude_of(below);
    magnitude = (down & 1u) == 0 ? down : magnitude;
  }
  if (magnitude > max_magnitude) {
    magnitude = t.is_ieee() ? (((1u << e_bits) - 1u) << m_bits) : max_magnitude;
  }
  return sign | static_cast<std::uint32_t>(magnitude);
}

}  // namespace

DataType DataType::signed_int(int bits) {
  if (!((bits >= 1 && bits <= 8) || bits == 16 || bits == 32))
    throw Error(fmt::format("no signed integer type of {} bits; valid: int1..int8, int16, int32", bits));
  return {TypeKind::SignedInt, bits, 0, 0};
}

DataType DataType::unsigned_int(int bits) {
  if (!((bits >= 1 && bits <= 8) || bits == 32))
    throw Error(fmt::format("no unsigned integer type of {} bits; valid: uint1..uint8, uint32", bits));
  return {TypeKind::UnsignedInt, bits, 0, 0};
}

DataType DataType::small_float(int exponent_bits, int mantissa_bits) {
  const int bits = 1 + exponent_bits + mantissa_bits;
  if (exponent_bits < 1 || mantissa_bits < 0 || bits < kMinSmallFloatBits || bits > kMaxSmallFloatBits)
    throw Error(fmt::format("no small float with {} exponent and {} mantissa bits; valid: f{{N}}e{{E}}m{{M}} "
                            "with 1 + E + M = N, 3 <= N <= 8, E >= 1",
                            exponent_bits, mantissa_bits));
  return {TypeKind::Float, bits, exponent_bits, mantissa_bits};
}

bool DataType::has_inf() const { return is_ieee() || is_e5m2(*this); }
bool DataType::has_nan() const { return is_ieee() || is_e5m2(*this) || is_e4m3fn(*this); }

std::string DataType::name() const {
  switch (kind_) {
    case TypeKind::Bool: return "bool";
    case TypeKind::SignedInt: return fmt::format("int{}", bits_);
    case TypeKind::UnsignedInt: return fmt::format("uint{}", bits_);
    case TypeKind::Float:
      if (*this == f32()) return "f32";
      if (*this == f16()) return "f16";
      if (*this == bf16()) return "bf16";
      return fmt::format("f{}e{}m{}", bits_, exponent_bits_, mantissa_bits_);
  }
  ANYBIT_ASSERT(false, "unknown type kind {}", static_cast<int>(kind_));
}

std::string dtype_forms() {
  return "f32, f16, bf16, int1..int8, int16, int32, uint1..uint8, uint32, bool, and small floats "
         "f{N}e{E}m{M} with 1 + E + M = N, 3 <= N <= 8, E >= 1 (e.g. f4e2m1, f6e3m2, f8e4m3, f8e5m2)";
}

bool try_parse_dtype(std::string_view s, DataType& out) {
  if (s == "f32") return out = DataType::f32(), true;
  if (s == "f16") return out = DataType::f16(), true;
  if (s == "bf16") return out = DataType::bf16(), true;
  if (s == "bool") return out = DataType::boolean(), true;
  int n = 0;
  try {
    if (s.starts_with("uint") && parse_int(s.substr(4), n)) return out = DataType::unsigned_int(n), true;
    if (s.starts_with("int") && parse_int(s.substr(3), n)) return out = DataType::signed_int(n), true;
    if (s.starts_with("f")) {
      const auto e_pos = s.find('e'), m_pos = s.find('m');
      int e = 0, m = 0;
      if (e_pos == std::string_view::npos || m_pos == std::string_view::npos || m_pos < e_pos) return false;
      if (!parse_int(s.substr(1, e_pos - 1), n) || !parse_int(s.substr(e_pos + 1, m_pos - e_pos - 1), e) ||
          !parse_int(s.substr(m_pos + 1), m))
        return false;
      if (n != 1 + e + m) return false;
      return out = DataType::small_float(e, m), true;
    }
  } catch (const Error&) {
    return false;
  }
  return false;
}

DataType parse_dtype(std::string_view name) {
  DataType t;
  if (try_parse_dtype(name, t)) return t;
  throw Error(fmt::format("unknown data type '{}'; valid types: {}", printable(name), dtype_forms()));
}

std::vector<DataType> all_small_floats() {
  std::vector<DataType> out;
  for (int n = kMinSmallFloatBits; n <= kMaxSmallFloatBits; ++n)
    for (int e = n - 1; e >= 1; --e) out.push_back(DataType::small_float(e, n - 1 - e));
  return out;
}

const std::vector<DataType>& all_dtypes() {
  static const std::vector<DataType> table = [] {
    std::vector<DataType> out = {DataType::f32(), DataType::f16(), DataType::bf16()};
    for (int b = 1; b <= 8; ++b) out.push_back(DataType::signed_int(b));
    for (int b = 1; b <= 8; ++b) out.push_back(DataType::unsigned_int(b));
    out.push_back(DataType::signed_int(16));
    out.push_back(DataType::signed_int(32));
    out.push_back(DataType::unsigned_int(32));
    out.push_back(DataType::boolean());
    for (DataType t : all_small_floats()) out.push_back(t);
    return out;
  }();
  return table;
}

bool is_nan_code(DataType t, std::uint32_t code) {
  if (!t.is_float()) return false;
  const std::uint32_t magnitude = code & (t.code_mask() >> 1);
  const std::uint32_t inf_magnitude = ((1u << t.exponent_bits()) - 1u) << t.mantissa_bits();
  if (is_e4m3fn(t)) return magnitude == 0x7Fu;
  if (t.is_ieee() || is_e5m2(t)) return magnitude > inf_magnitude;
  return false;
}

double decode(DataType t, std::uint32_t code) {
  code &= t.code_mask();
  switch (t.kind()) {
    case TypeKind::Bool:
    case TypeKind::UnsignedInt: return static_cast<double>(code);
    case TypeKind::SignedInt: {
      const std::int64_t sign_bit = std::int64_t{1} << (t.bits() - 1);
      return static_cast<double>(static_cast<std::int64_t>(code) - 2 * (code & sign_bit));
    }
    case TypeKind::Float: return decode_float(t, code);
  }
  ANYBIT_ASSERT(false, "unknown type kind {}", static_cast<int>(t.kind()));
}

std::uint32_t encode(DataType t, double x) {
  switch (t.kind()) {
    case TypeKind::Bool: return x != 0.0 ? 1u : 0u;
    case TypeKind::SignedInt:
    case TypeKind::UnsignedInt: {
      if (std::isnan(x)) return 0u;
      const double r = std::nearbyint(std::fmin(std::fmax(x, lowest_finite(t)), max_finite(t)));
      return static_cast<std::uint32_t>(static_cast<std::int64_t>(r)) & t.code_mask();
    }
    case TypeKind::Float: return encode_float(t, x);
  }
  ANYBIT_ASSERT(false, "unknown type kind {}", static_cast<int>(t.kind()));
}

double max_finite(DataType t) {
  switch (t.kind()) {
    case TypeKind::Bool: return 1.0;
    case TypeKind::SignedInt: return std::ldexp(1.0, t.bits() - 1) - 1.0;
    case TypeKind::UnsignedInt: return std::ldexp(1.0, t.bits()) - 1.0;
    case TypeKind::Float: return decode_float(t, max_finite_magnitude(t));
  }
  ANYBIT_ASSERT(false, "unknown type kind {}", static_cast<int>(t.kind()));
}

double lowest_finite(DataType t) {
  switch (t.kind()) {
    case TypeKind::Bool:
    case TypeKind::UnsignedInt: return 0.0;
    case TypeKind::SignedInt: return -std::ldexp(1.0, t.bits() - 1);
    case TypeKind::Float: return -max_finite(t);
  }
  ANYBIT_ASSERT(false, "unknown type kind {}", static_cast<int>(t.kind()));
}

}  // namespace anybit::isa
