// Data types of any bit width, with exact host encode/decode.
//
// Families:
//   f32, f16, bf16            IEEE-754 binary formats (inf and NaN, overflow on encode gives inf).
//   f{N}e{E}m{M}              small floats, sign + E + M = N, 3 <= N <= 8, E >= 1, bias 2^(E-1)-1,
//                             subnormals kept. Special values:
//                               f8e4m3  the common "fn" variant: no inf, S.1111.111 is NaN (max 448);
//                               f8e5m2  IEEE-like: exponent all ones is inf (m = 0) or NaN (max 57344);
//                               every other small float is all finite (no inf, no NaN).
//                             Encode rounds to nearest even and saturates to +-max finite (inf inputs too,
//                             like cvt.satfinite); NaN encodes to the format's NaN, or to +0 where the
//                             format has none.
//   int1..int8, int16, int32  two's complement; encode rounds to nearest even and saturates.
//   uint1..uint8, uint32      unsigned; encode rounds to nearest even and saturates; NaN encodes to 0.
//   bool                      1 bit; encode is (x != 0).
//
// A code is the format's bit pattern in the low `bits()` bits of a uint32_t.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace anybit::isa {

enum class TypeKind : std::uint8_t { Bool, SignedInt, UnsignedInt, Float };

class DataType {
 public:
  constexpr DataType() = default;

  static constexpr DataType f32() { return {TypeKind::Float, 32, 8, 23}; }
  static constexpr DataType f16() { return {TypeKind::Float, 16, 5, 10}; }
  static constexpr DataType bf16() { return {TypeKind::Float, 16, 8, 7}; }
  static constexpr DataType boolean() { return {TypeKind::Bool, 1, 0, 0}; }
  // Throws anybit::Error for widths the VM does not have.
  static DataType signed_int(int bits);
  static DataType unsigned_int(int bits);
  static DataType small_float(int exponent_bits, int mantissa_bits);

  constexpr TypeKind kind() const { return kind_; }
  constexpr int bits() const { return bits_; }
  constexpr int exponent_bits() const { return exponent_bits_; }
  constexpr int mantissa_bits() const { return mantissa_bits_; }
  constexpr bool is_float() const { return kind_ == TypeKind::Float; }
  constexpr bool is_integer() const { return kind_ == TypeKind::SignedInt || kind_ == TypeKind::UnsignedInt; }
  constexpr bool is_signed() const { return kind_ == TypeKind::SignedInt || kind_ == TypeKind::Float; }
  constexpr bool is_bool() const { return kind_ == TypeKind::Bool; }
  // f32, f16 and bf16: the formats with IEEE overflow-to-inf semantics.
  constexpr bool is_ieee() const { return is_float() && bits_ >= 16; }
  constexpr int exponent_bias() const { return (1 << (exponent_bits_ - 1)) - 1; }
  constexpr std::uint32_t code_mask() const { return bits_ >= 32 ? 0xFFFFFFFFu : ((1u << bits_) - 1u); }

  bool has_inf() const;
  bool has_nan() const;

  std::string name() const;

  friend constexpr bool operator==(const DataType&, const DataType&) = default;

 private:
  constexpr DataType(TypeKind kind, int bits, int e, int m)
      : kind_(kind), bits_(bits), exponent_bits_(e), mantissa_bits_(m) {}

  TypeKind kind_ = TypeKind::Float;
  int bits_ = 32;
  int exponent_bits_ = 8;
  int mantissa_bits_ = 23;
};

// Parses a type name; throws anybit::Error listing the valid forms on a bad name.
DataType parse_dtype(std::string_view name);
// Like parse_dtype, but reports failure as false instead of throwing.
bool try_parse_dtype(std::string_view name, DataType& out);
// The grammar of type names, for error messages.
std::string dtype_forms();

// Every type the VM has, in table order (IEEE floats, ints, uints, wide ints, bool, small floats).
const std::vector<DataType>& all_dtypes();
// Every small float f{N}e{E}m{M}, N = 3..8.
std::vector<DataType> all_small_floats();

// Exact value of a code (every code of every type is exactly representable in double).
double decode(DataType type, std::uint32_t code);
// The same value as f32 (exact for every type but int32/uint32 beyond 2^24).
inline float decode_f32(DataType type, std::uint32_t code) { return static_cast<float>(decode(type, code)); }
// Nearest code to x (round to nearest even, saturation and NaN rules as in the header comment).
std::uint32_t encode(DataType type, double x);

// Largest finite value and most negative finite value.
double max_finite(DataType type);
double lowest_finite(DataType type);
// True when the code is a NaN of the format.
bool is_nan_code(DataType type, std::uint32_t code);

}  // namespace anybit::isa
