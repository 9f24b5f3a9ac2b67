// Quantized matmul (first slice): quantize/pack round trips, the kernel on the interpreter for every
// format, and clear errors for unsupported configurations.
#include <doctest/doctest.h>

#include "isa/error.h"
#include "quant_matmul_harness.h"

using namespace anybit;
using programs::QuantFormat;
using programs::ZeroMode;
using isa::DataType;

namespace {

std::vector<DataType> weight_formats() {
  std::vector<DataType> out;
  for (DataType t : isa::all_dtypes())
    if (t.bits() <= 8 && !t.is_bool()) out.push_back(t);
  return out;
}

}  // namespace

TEST_CASE("pack_weights / unpack_weights round-trip bit-exactly for every format") {
  std::mt19937 rng(1);
  for (DataType t : weight_formats()) {
    CAPTURE(t.name());
    const QuantFormat f{t, DataType::f16(), 16, ZeroMode::None};
    for (auto [N, K] : {std::pair{64, 32}, {80, 64}, {16, 16}}) {
      std::vector<std::uint8_t> codes(static_cast<std::size_t>(N * K));
      for (auto& c : codes) c = static_cast<std::uint8_t>(rng() & t.code_mask());
      const auto packed = programs::pack_weights(f, codes, N, K);
      CHECK(packed.size() == static_cast<std::size_t>(K / 16 * ((N + 63) / 64) * 128 * t.bits()));
      CHECK(programs::unpack_weights(f, packed, N, K) == codes);
    }
  }
}

TEST_CASE("quantize: codes within range, scales reproduce the largest weight, zeros for asymmetric formats") {
  const std::int64_t N = 16, K = 64;
  std::vector<float> w(N * K);
  for (std::int64_t i = 0; i < N * K; ++i) w[i] = static_cast<float>(std::sin(0.37 * i) * (1 + i % 7));
  const QuantFormat f{DataType::signed_int(4), DataType::f16(), 32, ZeroMode::None};
  const auto q = programs::quantize(f, w, N, K);
  for (std::int64_t n = 0; n < N; ++n) {
    double amax = 0;
    for (std::int64_t k = 0; k < 32; ++k) amax = std::max(amax, std::fabs(double(w[n * K + k])));
    CHECK(isa::decode(DataType::f16(), q.scales[n]) * 7 == doctest::Approx(amax).epsilon(1e-3));
  }
  const QuantFormat u{DataType::unsigned_int(3), DataType::bf16(), 32, ZeroMode::Integer};
  const auto qu = programs::quantize(u, w, N, K);
  CHECK(qu.zeros.size() == static_cast<std::size_t>(2 * N));
  for (auto c : qu.codes) CHECK(c < 8);
}

TEST_CASE("every format x {f16, bf16} on the interpreter against the double reference") {
  int index = 0;
  for (DataType t : weight_formats()) {
    for (DataType act : {DataType::f16(), DataType::bf16()}) {
      // Cycle groups and zero modes through the formats so each meets several of them.
      const int groups[] = {32, 64, 128};
      ZeroMode zeros = ZeroMode::None;
      if (t.kind() == isa::TypeKind::UnsignedInt && index % 3 != 0) zeros = index % 3 == 1 ? ZeroMode::Integer : ZeroMode::Float;
      const QuantFormat f{t, act, groups[index % 3], zeros, index % 5 == 0};
      const std::int64_t M = 1 + (index % 4) * 11, N = 80, K = 128;
      ++index;
      CAPTURE(t.name());
      CAPTURE(act.name());
      CAPTURE(f.group);
      CAPTURE(static_cast<int>(zeros));
      CAPTURE(M);
      auto p = testing::make_problem(f, M, N, K, static_cast<std::uint64_t>(index));
      vm::interpret(programs::quant_matmul(f), testing::arguments(p));
      CHECK(testing::relative_error(p) <= testing::tolerance(f, K));
    }
  }
}

TEST_CASE("unsupported configurations are clear errors") {
  CHECK_THROWS_WITH_AS(programs::validate({DataType::signed_int(4), DataType::f32(), 32, ZeroMode::None}, 1, 64, 64),
                       doctest::Contains("activations must be f16 or bf16, not f32"), Error);
  CHECK_THROWS_WITH_AS(programs::validate({DataType::signed_int(4), DataType::f16(), 32, ZeroMode::Integer}, 1, 64, 64),
                       doctest::Contains("integer zero points need an unsigned integer format, not int4"), Error);
  CHECK_THROWS_WITH_AS(programs::validate({DataType::signed_int(4), DataType::f16(), 48, ZeroMode::None}, 1, 64, 64),
                       doctest::Contains("group size 48 must be a multiple of 16 that divides K=64"), Error);
  CHECK_THROWS_WITH_AS(programs::validate({DataType::signed_int(4), DataType::f16(), 32, ZeroMode::None}, 1, 60, 64),
                       doctest::Contains("N and K must be multiples of 16, got N=60"), Error);
  CHECK_THROWS_WITH_AS(programs::validate({DataType::signed_int(16), DataType::f16(), 32, ZeroMode::None}, 1, 64, 64),
                       doctest::Contains("weights must be a 1..8-bit"), Error);
}
