// The runtime header's CPU bodies against the PTX ISA's definitions, independently of the compiler.
#include <doctest/doctest.h>

#include <random>

#include "backend_cuda/runtime/anybit_runtime.cuh"
#include "isa/dtype.h"

// The simulator hooks are not exercised here; these stubs only satisfy the linker.
namespace ab {
thread_local SimThread* ab_sim_current = nullptr;
void ab_sim_bar_sync() {}
void ab_sim_cp_async(void*, const void*, int, int) {}
void ab_sim_cp_async_commit() {}
void ab_sim_cp_async_wait(int) {}
void ab_sim_ldmatrix(u32*, const void*, int, bool) {}
void ab_sim_mma(const char*, u32*, const u32*, const u32*, const u32*) {}
u32 ab_sim_shfl_xor(u32 v, int) { return v; }
void ab_sim_access(const void*, int, int, int) {}
void ab_sim_count() {}
}  // namespace ab

using anybit::isa::DataType;

TEST_CASE("lop3: every immediate is the function it names (imm = F(0xF0, 0xCC, 0xAA))") {
  std::mt19937 rng(3);
  for (unsigned imm = 0; imm < 256; ++imm) {
    CAPTURE(imm);
    // The defining property, on the three canonical operands.
    const auto f = [&](ab::u32 a, ab::u32 b, ab::u32 c) {
      ab::u32 d = 0;
      for (int bit = 0; bit < 32; ++bit) {
        const unsigned row = (((a >> bit) & 1u) ? 0xF0u : 0x0Fu) & (((b >> bit) & 1u) ? 0xCCu : 0x33u) &
                             (((c >> bit) & 1u) ? 0xAAu : 0x55u);  // the one truth-table row selected
        d |= ((imm & row) ? 1u : 0u) << bit;
      }
      return d;
    };
    for (int i = 0; i < 64; ++i) {
      const ab::u32 a = rng(), b = rng(), c = rng();
      ab::u32 got = 0;
      switch (imm) {
#define CASE(n) \
  case n: got = ab::lop3<n>(a, b, c); break;
#include "lop3_cases.inc"
#undef CASE
      }
      REQUIRE(got == f(a, b, c));
    }
  }
  CHECK(ab::lop3<0xEA>(0x12345678u, 0x000F000Fu, 0x64006400u) == ((0x12345678u & 0x000F000Fu) | 0x64006400u));
  CHECK(ab::lop3<0x6A>(0xFFu, 0x0Fu, 0xF0u) == ((0xFFu & 0x0Fu) ^ 0xF0u));
}

TEST_CASE("prmt: every selector nibble in every position, sign replication included") {
  const ab::u32 a = 0x83F20170u, b = 0x7C05E691u;
  const ab::u8 bytes[8] = {0x70, 0x01, 0xF2, 0x83, 0x91, 0xE6, 0x05, 0x7C};  // {b, a}: a is bytes 0..3
  for (int position = 0; position < 4; ++position)
    for (ab::u32 s = 0; s < 16; ++s) {
      const ab::u32 selector = (0x3210u & ~(0xFu << (4 * position))) | (s << (4 * position));
      const ab::u32 got = ab::prmt(a, b, selector);
      const ab::u8 source = bytes[s & 7];
      const ab::u8 want = (s & 8) ? ((source & 0x80) ? 0xFF : 0x00) : source;
      CAPTURE(position);
      CAPTURE(s);
      CHECK(((got >> (8 * position)) & 0xFF) == want);
    }
  // REFERENCE.md's 8-bit to f16 trick: bytes 0 and 2 under 0x64 high bytes.
  CHECK(ab::prmt(0x00000504u, 0x64646464u, 0x5250u) == 0x64006404u);
}

TEST_CASE("cvt f32 -> f16/bf16 rounds to nearest even, subnormals and overflow included") {
  std::mt19937 rng(5);
  for (int i = 0; i < 300000; ++i) {
    const ab::u32 bits = rng();
    const float f = ab::as_float(bits);
    if (f != f) continue;
    REQUIRE(ab::f32_to_f16(f) == anybit::isa::encode(DataType::f16(), f));
    REQUIRE(ab::f32_to_bf16(f) == anybit::isa::encode(DataType::bf16(), f));
  }
  CHECK(ab::f32_to_f16(1.0f + 0x1p-11f) == 0x3C00u);          // tie to even
  CHECK(ab::f32_to_f16(1.0f + 3 * 0x1p-11f) == 0x3C02u);      // tie to even, upward
  CHECK(ab::f32_to_f16(0x1p-25f) == 0x0000u);                 // half the smallest subnormal: to even (0)
  CHECK(ab::f32_to_f16(0x1.8p-25f) == 0x0001u);
  CHECK(ab::f32_to_f16(65520.0f) == 0x7C00u);
  for (ab::u32 h = 0; h < 65536; ++h) {
    const float f = ab::f16_to_f32(h);
    if (f != f) continue;
    REQUIRE(f == (float)anybit::isa::decode(DataType::f16(), h));
  }
}

TEST_CASE("small floats and integers: device encode/decode equal the host's for every code") {
  for (DataType t : anybit::isa::all_small_floats()) {
    CAPTURE(t.name());
    for (ab::u32 code = 0; code < (1u << t.bits()); ++code) {
      const double want = anybit::isa::decode(t, code);
      float got = 0;
#define DECODE(E, M, S) \
  if (t.exponent_bits() == E && t.mantissa_bits() == M) got = ab::small_float_to_f32<E, M, S>(code);
#include "small_float_cases.inc"
#undef DECODE
      if (want != want) CHECK(got != got);
      else CHECK(got == (float)want);
    }
  }
  CHECK(ab::sext<3>(0b100u) == -4);
  CHECK(ab::wrap<4>(-1) == 0xFu);
  CHECK(ab::saturate_int<4, true>(100) == 7u);
  CHECK(ab::f32_to_int<8, true>(-2.5f) == ab::wrap<8>(-2));
  CHECK(ab::funnel_r(0x89ABCDEFu, 0x01234567u, 8) == 0x6789ABCDu);
}

TEST_CASE("packed f16x2 / bf16x2 add, sub, mul, fma: each half the exactly rounded result") {
  // Reference: the exact result in double, rounded once by the host encoder. Random operands keep their
  // exponents within 2^-10..2^10 so that every sum, product and fused result is exact in double; the
  // specials (zeros, subnormals, 1, the largest values) join add, sub and mul, which stay exact with them.
  std::mt19937 rng(9);
  for (DataType t : {DataType::f16(), DataType::bf16()}) {
    const bool half = t == DataType::f16();
    const int mantissa = half ? 10 : 7, bias = half ? 15 : 127;
    auto dec = [&](ab::u32 c) { return anybit::isa::decode(t, c); };
    const std::vector<ab::u32> specials =
        half ? std::vector<ab::u32>{0x0000, 0x8000, 0x0001, 0x03FF, 0x3C00, 0xBC00, 0x7BFF, 0xFBFF, 0x0400, 0x3555}
             : std::vector<ab::u32>{0x0000, 0x8000, 0x3F80, 0xBF80, 0x7F7F, 0xFF7F, 0x0080, 0x3EAB};
    auto moderate = [&] {
      const ab::u32 exponent = static_cast<ab::u32>(bias - 10 + static_cast<int>(rng() % 21));
      return (rng() & 1u) << 15 | exponent << mantissa | (rng() & ((1u << mantissa) - 1));
    };
    const double top = anybit::isa::max_finite(t);
    // Beyond the largest finite value IEEE arithmetic overflows to infinity while the host encoder
    // saturates (the VM's cast rule): those results are left out.
    auto check = [&](const char* op, ab::u32 got, double lo, double hi) {
      CAPTURE(op);
      CAPTURE(t.name());
      CAPTURE(lo);
      CAPTURE(hi);
      if (std::fabs(lo) <= top) {
        const ab::u32 want = anybit::isa::encode(t, lo);
        CHECK(((got & 0xFFFF) == want || (dec(got & 0xFFFF) == 0 && dec(want) == 0)));
      }
      if (std::fabs(hi) <= top) {
        const ab::u32 want = anybit::isa::encode(t, hi);
        CHECK(((got >> 16) == want || (dec(got >> 16) == 0 && dec(want) == 0)));
      }
    };
    for (int i = 0; i < 20000; ++i) {
      const bool special = i % 4 == 0;
      auto pick = [&] { return special && rng() % 2 ? specials[rng() % specials.size()] : moderate(); };
      const ab::u32 a = pick(), b = pick(), c = moderate(), a2 = pick(), b2 = pick(), c2 = moderate();
      const ab::u32 pa = a | a2 << 16, pb = b | b2 << 16, pc = c | c2 << 16;
      CAPTURE(a);
      CAPTURE(b);
      check("add", half ? ab::hadd2(pa, pb) : ab::badd2(pa, pb), dec(a) + dec(b), dec(a2) + dec(b2));
      check("sub", half ? ab::hsub2(pa, pb) : ab::bsub2(pa, pb), dec(a) - dec(b), dec(a2) - dec(b2));
      check("mul", half ? ab::hmul2(pa, pb) : ab::bmul2(pa, pb), dec(a) * dec(b), dec(a2) * dec(b2));
      if (!special)
        check("fma", half ? ab::hfma2(pa, pb, pc) : ab::bfma2(pa, pb, pc), dec(a) * dec(b) + dec(c),
              dec(a2) * dec(b2) + dec(c2));
    }
  }
}
