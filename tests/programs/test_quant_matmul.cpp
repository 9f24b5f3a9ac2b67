// Quantized matmul (first slice): quantize/pack round trips, the kernel on the interpreter for every
// format, and clear errors for unsupported configurations.
#include <doctest/doctest.h>

#include <numeric>

#include "backend_cuda/nvrtc.h"
#include "isa/error.h"
#include "layout/mma_layouts.h"
#include "quant_matmul_harness.h"
#include "vm/verifier.h"

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

namespace {

// The code of -0 in a small float: the sign bit alone.
bool is_negative_zero(DataType t, std::uint32_t code) { return t.is_float() && code == 1u << (t.bits() - 1); }

}  // namespace

TEST_CASE("pack_weights / unpack_weights round-trip bit-exactly for every format") {
  std::mt19937 rng(1);
  for (DataType t : weight_formats()) {
    CAPTURE(t.name());
    const QuantFormat f{t, DataType::f16(), 16, ZeroMode::None};
    const bool integer_packed = programs::packed_code_type(t) != t;
    for (auto [N, K] : {std::pair{64, 32}, {80, 64}, {16, 16}}) {
      std::vector<std::uint8_t> codes(static_cast<std::size_t>(N * K));
      for (auto& c : codes)
        do c = static_cast<std::uint8_t>(rng() & t.code_mask());
        while (!std::isfinite(isa::decode(t, c)));  // pack_weights takes finite weights
      const auto packed = programs::pack_weights(f, codes, N, K);
      CHECK(packed.size() == static_cast<std::size_t>(N * K * t.bits() / 8));  // no padding
      // Integer-packed formats have no -0: it comes back as +0, every other code as itself.
      auto expected = codes;
      if (integer_packed)
        for (auto& c : expected)
          if (is_negative_zero(t, c)) c = 0;
      CHECK(programs::unpack_weights(f, packed, N, K) == expected);
    }
  }
}

TEST_CASE("pack_weights refuses NaN, inf and codes beyond the format's bits, naming the weight") {
  const auto refuse = [](const char* format, std::uint32_t code, const char* message) {
    CAPTURE(format);
    const QuantFormat f{isa::parse_dtype(format), DataType::f16(), 16, ZeroMode::None};
    std::vector<std::uint8_t> codes(16 * 32, 0);
    codes[3 * 32 + 17] = static_cast<std::uint8_t>(code);  // W[3, 17]
    CHECK_THROWS_WITH_AS(programs::pack_weights(f, codes, 16, 32), doctest::Contains(message), Error);
  };
  refuse("f8e4m3", 0x7f, "W[3, 17] is NaN (code 0x7f)");
  refuse("f8e4m3", 0xff, "W[3, 17] is NaN (code 0xff)");
  refuse("f8e5m2", 0xfc, "W[3, 17] is -inf (code 0xfc)");
  refuse("int4", 0x10, "the code of W[3, 17] is 0x10, beyond the 4 bits of int4");
  refuse("f3e2m0", 0x8, "beyond the 3 bits of f3e2m0");
}

TEST_CASE("small floats with one exponent bit are packed as integers of the same value") {
  int formats = 0;
  for (DataType t : weight_formats()) {
    const DataType packed = programs::packed_code_type(t);
    if (!(t.is_float() && t.exponent_bits() == 1)) {
      CHECK(packed == t);
      continue;
    }
    ++formats;
    CAPTURE(t.name());
    CHECK(packed == DataType::signed_int(t.bits()));
    // Every code, packed alone in a 16 x 16 tile of zeros: the integer found in the packed bytes, read by
    // isa::decode as a two's complement code, times 2^(1 - m), is the code's value.
    const QuantFormat f{t, DataType::f16(), 16, ZeroMode::None};
    for (std::uint32_t code = 0; code <= t.code_mask(); ++code) {
      CAPTURE(code);
      std::vector<std::uint8_t> codes(256, 0);
      codes[0] = static_cast<std::uint8_t>(code);
      const auto bytes = programs::pack_weights(f, codes, 16, 16);
      std::uint32_t found = 0;
      int nonzero = 0;
      for (std::size_t bit = 0; bit < bytes.size() * 8; bit += static_cast<std::size_t>(t.bits()))
        if (const std::uint32_t v = isa::read_bits(bytes, bit, t.bits())) found = v, ++nonzero;
      CHECK(nonzero <= 1);
      CHECK(isa::decode(packed, found) * std::ldexp(1.0, 1 - t.mantissa_bits()) == isa::decode(t, code));
    }
    // The one integer code that is no value of the format is refused by unpack_weights, naming the weight.
    std::vector<std::uint8_t> bytes(256 * static_cast<std::size_t>(t.bits()) / 8, 0);
    isa::write_bits(bytes, 0, t.bits(), 1u << (t.bits() - 1));
    const std::string message = "is no " + t.name() + " value";
    CHECK_THROWS_WITH_AS(programs::unpack_weights(f, bytes, 16, 16), doctest::Contains(message.c_str()), Error);
  }
  CHECK(formats == 6);  // f3e1m1 f4e1m2 f5e1m3 f6e1m4 f7e1m5 f8e1m6
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
      testing::run_schedule(p, {}, [](const vm::Program& prog, const vm::Arguments& args) { vm::interpret(prog, args); });
      CHECK(testing::relative_error(p) <= testing::tolerance(f, K));
    }
  }
}

TEST_CASE("group sizes whose steps four does not divide (80, 96, 112, 160, 240) on the interpreter") {
  // A chunk must never straddle two groups: the scale of its first group would be applied to all of it.
  const DataType formats[] = {DataType::signed_int(4), DataType::unsigned_int(3), isa::parse_dtype("f6e3m2"),
                              DataType::signed_int(8), isa::parse_dtype("f7e5m1")};
  int index = 0;
  for (int group : {80, 96, 112, 160, 240}) {
    const DataType t = formats[index % 5];
    const QuantFormat f{t, index % 2 ? DataType::bf16() : DataType::f16(), group,
                        t.kind() == isa::TypeKind::UnsignedInt ? ZeroMode::Integer : ZeroMode::None};
    const int c = programs::chunk_steps(f);
    CHECK((group / 16) % c == 0);
    CHECK(c <= 8);
    const std::int64_t M = 3 + index, N = 48, K = 2 * group;
    CAPTURE(group);
    CAPTURE(t.name());
    for (const programs::Schedule& s : {programs::Schedule{}, programs::Schedule{4, 1, 4, 3, true}}) {
      CAPTURE(programs::describe(s));
      auto p = testing::make_problem(f, M, N, K, static_cast<std::uint64_t>(900 + index));
      testing::run_schedule(p, s, [](const vm::Program& prog, const vm::Arguments& args) { vm::interpret(prog, args); });
      CHECK(testing::relative_error(p) <= testing::tolerance(f, K));
    }
    ++index;
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

TEST_CASE("schedules: warps, M tiles, stages and split-K (slices inside groups, empty slices) on the interpreter") {
  const testing::ScheduleCase cases[] = {
      {{DataType::signed_int(4), DataType::f16(), 64, ZeroMode::None}, {1, 1, 0, 1}, 5, 48, 128},
      {{DataType::unsigned_int(3), DataType::bf16(), 32, ZeroMode::Float, true}, {2, 2, 2, 2}, 33, 80, 128},
      {{DataType::signed_int(2), DataType::f16(), 128, ZeroMode::None, true}, {8, 2, 3, 1}, 70, 144, 256},
      // per-channel scales (one group of 4 chunks) split in 3: slices start inside the group, one is empty
      {{isa::parse_dtype("f4e2m1"), DataType::f16(), 256, ZeroMode::None}, {4, 1, 3, 3}, 3, 64, 256},
      // more slices than chunks: empty slices still write their (zero) partials
      {{DataType::unsigned_int(5), DataType::bf16(), 32, ZeroMode::Integer, true}, {4, 1, 4, 5}, 1, 80, 64},
      // f7e6m0 exceeds f16: activations split into bf16 halves, split-K and M tiles; with float zero points
      // the weights are scaled in f32 before the product instead; f7e5m1 splits too (exponent 31: 2^16)
      {{isa::parse_dtype("f7e6m0"), DataType::f16(), 64, ZeroMode::None}, {2, 2, 2, 4}, 17, 32, 256},
      {{isa::parse_dtype("f8e7m0"), DataType::f16(), 64, ZeroMode::Float, true}, {2, 2, 2, 2}, 17, 32, 256},
      {{isa::parse_dtype("f7e5m1"), DataType::f16(), 64, ZeroMode::None}, {2, 2, 2, 4}, 17, 32, 256},
      // weights on the mma A side: 8-row tiles (m1) and 16-row tiles (m2), direct and pipelined, split,
      // zeros, bias, f32-scaled weights
      {{DataType::signed_int(4), DataType::f16(), 128, ZeroMode::None, true}, {4, 1, 3, 1, true}, 5, 80, 256},
      {{DataType::unsigned_int(2), DataType::bf16(), 32, ZeroMode::Integer}, {2, 2, 0, 1, true}, 19, 48, 128},
      {{isa::parse_dtype("f5e2m2"), DataType::f16(), 256, ZeroMode::None, true}, {8, 1, 2, 3, true}, 9, 144, 256},
      {{isa::parse_dtype("f8e5m2"), DataType::f16(), 64, ZeroMode::None}, {4, 2, 4, 2, true}, 16, 64, 256},
      // f6e5m0 splits the activations with the weights on A, and decodes halved into f16 on B
      {{isa::parse_dtype("f6e5m0"), DataType::f16(), 64, ZeroMode::None}, {4, 1, 3, 2, true}, 9, 64, 256},
      {{isa::parse_dtype("f6e5m0"), DataType::f16(), 128, ZeroMode::None, true}, {2, 2, 2, 1}, 17, 32, 256},
      {{DataType::unsigned_int(6), DataType::f16(), 64, ZeroMode::Float, true}, {1, 1, 3, 2, true}, 1, 16, 128},
      // two or four chunks an iteration: a last iteration reaching past K (3 chunks, unroll 2), slices of
      // whole iterations, several groups an iteration (g32: chunks of 2 steps) and several iterations a group
      // (g256, unroll 2 and 4), direct loads, f32-scaled weights, weights on A
      {{DataType::signed_int(4), DataType::f16(), 128, ZeroMode::None}, {4, 1, 3, 1, false, 2}, 5, 48, 384},
      {{DataType::unsigned_int(4), DataType::bf16(), 32, ZeroMode::Integer, true}, {2, 1, 4, 2, false, 4}, 9, 32, 512},
      {{isa::parse_dtype("f8e6m1"), DataType::f16(), 64, ZeroMode::None}, {2, 1, 0, 1, true, 2}, 3, 32, 192},
      {{isa::parse_dtype("f4e2m1"), DataType::f16(), 256, ZeroMode::None}, {4, 1, 2, 3, true, 2}, 6, 64, 768},
      {{DataType::unsigned_int(3), DataType::f16(), 256, ZeroMode::Float}, {1, 2, 3, 1, false, 4}, 20, 16, 512},
      {{DataType::signed_int(2), DataType::bf16(), 128, ZeroMode::None, true}, {4, 1, 4, 4, true, 2}, 1, 64, 640},
      // the weights decoded once into shared memory (sd): rows split over the warps, M past the last block's
      // rows, N not a multiple of the block's columns, split-K, two chunks an iteration (two decoded tiles),
      // zeros, bias, bf16, f32-scaled weights, integer and small-float decodes
      {{DataType::signed_int(4), DataType::f16(), 128, ZeroMode::None}, {4, 1, 4, 1, false, 1, false, true}, 70, 80, 256},
      {{DataType::unsigned_int(4), DataType::bf16(), 64, ZeroMode::Integer, true}, {2, 2, 3, 2, false, 2, false, true}, 45, 48, 384},
      {{isa::parse_dtype("f6e3m2"), DataType::f16(), 32, ZeroMode::Float}, {4, 2, 2, 1, false, 1, false, true}, 130, 64, 128},
      {{isa::parse_dtype("f7e6m0"), DataType::f16(), 128, ZeroMode::None, true}, {2, 1, 4, 1, false, 2, false, true}, 33, 32, 512},
      {{isa::parse_dtype("f7e5m1"), DataType::f16(), 64, ZeroMode::None}, {2, 1, 3, 1, false, 1, false, true}, 20, 32, 256},
      {{isa::parse_dtype("f3e2m0"), DataType::f16(), 128, ZeroMode::None}, {4, 1, 3, 3, false, 1, false, true}, 64, 64, 384},
  };
  int index = 0;
  for (const auto& [f, s, M, N, K] : cases) {
    CAPTURE(f.weights.name());
    CAPTURE(programs::describe(s));
    auto p = testing::make_problem(f, M, N, K, static_cast<std::uint64_t>(500 + index++));
    testing::run_schedule(p, s, [](const vm::Program& prog, const vm::Arguments& args) { vm::interpret(prog, args); });
    CHECK(testing::relative_error(p) <= testing::tolerance(f, K));
  }
}

TEST_CASE("choose_schedule: M tiles from M, split-K for small grids, valid for every choice") {
  const QuantFormat f{DataType::signed_int(4), DataType::f16(), 128, ZeroMode::None};
  const auto small = programs::choose_schedule(f, 1, 4096, 4096, {"sm_80", 108});
  CHECK(small.m_tiles == 1);
  CHECK(small.weights_on_a);  // M <= 8: 8-row tiles with the weights as the mma A operand
  CHECK_FALSE(programs::choose_schedule(f, 9, 4096, 4096, {"sm_80", 108}).weights_on_a);
  CHECK(small.split_k > 1);  // 64 blocks of 64 columns cannot fill 108 SMs
  CHECK(64 * small.split_k >= 108);
  const auto large = programs::choose_schedule(f, 256, 8192, 8192, {"sm_80", 108});
  CHECK(large.shared_decode);  // M >= 64: the weights decoded once for the block's 64 rows
  CHECK(programs::block_rows(large) == 64);  // two 128-row blocks' shared tiles do not fit an SM
  CHECK(2 * programs::shared_bytes(f, large) <= backend_cuda::shared_memory_limit("sm_80"));
  CHECK(large.split_k == 1);  // 128 x 4 blocks already fill the device
  CHECK_FALSE(programs::choose_schedule(f, 63, 8192, 8192, {"sm_80", 108}).shared_decode);
  CHECK(programs::choose_schedule(f, 64, 8192, 8192, {"sm_80", 108}).shared_decode);
  CHECK(programs::choose_schedule(f, 24, 4096, 4096, {"sm_80", 108}).m_tiles == 2);
  CHECK(programs::choose_schedule(f, 1, 16, 256, {"sm_80", 108}).warps == 1);  // one 16-column tile
  for (std::int64_t M : {1, 7, 16, 17, 64, 1000})
    for (std::int64_t N : {16, 64, 4096, 28672})
      for (std::int64_t K : {128, 4096, 8192}) CHECK_NOTHROW(programs::validate(programs::choose_schedule(f, M, N, K)));
  // Four stages everywhere: the stage index is a mask (three cost a remainder: 6-11 instructions an
  // iteration on sm_80).
  for (const char* arch : {"sm_80", "sm_86", "sm_90", "sm_100"})
    CHECK(programs::choose_schedule(f, 1, 4096, 4096, {arch, 0}).stages == 4);
  // More multiprocessors, more slices for the same small grid.
  CHECK(programs::choose_schedule(f, 1, 4096, 8192, {"sm_90", 264}).split_k >=
        programs::choose_schedule(f, 1, 4096, 8192, {"sm_90", 66}).split_k);
  CHECK_THROWS_WITH_AS(programs::choose_schedule(f, 1, 64, 256, {"sm_75", 0}), doctest::Contains("unknown architecture 'sm_75'"), Error);
  CHECK_THROWS_WITH_AS(programs::validate(programs::Schedule{3, 1, 3, 1}), doctest::Contains("warps must be 1, 2, 4 or 8, not 3"), Error);
  CHECK_THROWS_WITH_AS(programs::validate(programs::Schedule{4, 4, 3, 1}), doctest::Contains("m_tiles must be 1 or 2, not 4"), Error);
  CHECK_THROWS_WITH_AS(programs::validate(programs::Schedule{4, 1, 1, 1}), doctest::Contains("stages must be 0 (direct loads) or 2..8, not 1"), Error);
  CHECK_THROWS_WITH_AS(programs::validate(programs::Schedule{4, 1, 3, 0}), doctest::Contains("split_k must be 1..64, not 0"), Error);
  CHECK_THROWS_WITH_AS(programs::validate(programs::Schedule{4, 1, 3, 1, false, 3}), doctest::Contains("unroll must be 1, 2 or 4, not 3"),
                       Error);
  CHECK_THROWS_WITH_AS(programs::validate(programs::Schedule{4, 1, 3, 1, true, 1, false, true}),
                       doctest::Contains("shared_decode (sd) and weights_on_a (wa) exclude each other"), Error);
  CHECK_THROWS_WITH_AS(programs::validate(programs::Schedule{4, 1, 0, 1, false, 1, false, true}),
                       doctest::Contains("shared_decode (sd) needs shared-memory stages"), Error);
  CHECK_THROWS_WITH_AS(programs::validate(programs::Schedule{8, 1, 3, 1, false, 1, false, true}),
                       doctest::Contains("shared_decode (sd) takes at most 4 warps, not 8"), Error);
  // Under shared_decode the warps split the rows.
  CHECK(programs::block_rows(programs::Schedule{4, 2, 3, 1, false, 1, false, true}) == 128);
  CHECK(programs::block_rows(programs::Schedule{4, 2, 3, 1}) == 32);
  CHECK(programs::block_rows(programs::Schedule{4, 2, 3, 1, true}) == 16);
}

TEST_CASE("shared_bytes: the verifier's figure for the built program, computed without building it") {
  int checked = 0;
  for (const char* w : {"int2", "int3", "f4e2m1", "f5e2m2", "int8"})
    for (int group : {32, 128})
      for (const programs::Schedule& s : {programs::Schedule{4, 1, 4, 1, true, 2}, programs::Schedule{8, 2, 3, 2},
                                          programs::Schedule{2, 1, 2, 1, false, 4}, programs::Schedule{1, 2, 0, 1},
                                          programs::Schedule{8, 2, 8, 1, false, 4}, programs::Schedule{4, 2, 3, 1, false, 2, false, true},
                                          programs::Schedule{2, 1, 4, 1, false, 1, false, true}}) {
        const QuantFormat f{isa::parse_dtype(w), DataType::f16(), group, ZeroMode::None};
        CAPTURE(w);
        CAPTURE(group);
        CAPTURE(programs::describe(s));
        const std::int64_t bytes = programs::shared_bytes(f, s);
        if (bytes <= vm::VerifyOptions{}.shared_limit_bytes) {
          CHECK(bytes == vm::verify(programs::quant_matmul(f, s)).shared.total_bytes);
          ++checked;
        } else {  // the builder refuses it, naming the shared memory
          CHECK_THROWS_WITH_AS(programs::quant_matmul(f, s), doctest::Contains("bytes of shared memory"), Error);
        }
      }
  CHECK(checked >= 30);
}

TEST_CASE("choose_schedule: two chunks an iteration at M <= 16 while two blocks fit an SM and a slice has two iterations") {
  const QuantFormat int4{DataType::signed_int(4), DataType::f16(), 128, ZeroMode::None};
  const QuantFormat int8{DataType::signed_int(8), DataType::f16(), 128, ZeroMode::None};
  for (const char* arch : {"sm_80", "sm_86", "sm_90"})
    for (const auto& f : {int4, int8})
      for (std::int64_t M : {1, 16, 64}) {
        CAPTURE(arch);
        CAPTURE(f.weights.name());
        CAPTURE(M);
        const auto s = programs::choose_schedule(f, M, 4096, 4096, {arch, 0});
        auto twice = s;
        twice.unroll = 2;
        twice.stages = 3;  // the smaller of the two unrolled forms
        // (M > 16 keeps one chunk an iteration; at M >= 64 its shared-decode stages may not fit unrolled at all)
        const std::int64_t bytes = M > 16 ? 0 : vm::verify(programs::quant_matmul(f, twice)).shared.total_bytes;
        const std::int64_t limit = std::string(arch) == "sm_86" ? 99 * 1024 : std::string(arch) == "sm_80" ? 163 * 1024 : 227 * 1024;
        if (s.unroll == 2) {
          CHECK(2 * vm::verify(programs::quant_matmul(f, s)).shared.total_bytes <= limit);
          // three stages only where four do not fit
          auto four = s;
          four.stages = 4;
          if (s.stages == 3) CHECK(2 * vm::verify(programs::quant_matmul(f, four)).shared.total_bytes > limit);
          else CHECK(s.stages == 4);
        } else {
          CHECK((M > 16 || 2 * bytes > limit || 4096 / (16 * programs::chunk_steps(f)) / s.split_k < 4));
        }
        if (M > 16) CHECK(s.unroll == 1);
      }
  // int4 at M = 1 on sm_80: 4 stages of two 2 KB chunks plus A, 50 KB: unrolled.
  CHECK(programs::choose_schedule(int4, 1, 4096, 4096, {"sm_80", 0}).unroll == 2);
  // 8-bit weights at M = 16 on sm_86: 72 KB of stages even with three at unroll 2, more than half of 99 KB:
  // one chunk. On sm_80 four stages (96 KB) do not fit twice in 163 KB, three (72 KB) do.
  CHECK(programs::choose_schedule(int8, 16, 4096, 4096, {"sm_86", 0}).unroll == 1);
  const auto ampere = programs::choose_schedule(int8, 16, 4096, 4096, {"sm_80", 0});
  CHECK(ampere.unroll == 2);
  CHECK(ampere.stages == 3);
  // K = 256 (two chunks): one iteration of two would leave the pipeline nothing to overlap.
  CHECK(programs::choose_schedule(int4, 1, 4096, 256, {"sm_90", 0}).unroll == 1);
}

TEST_CASE("half_split_layout: the two codes of every pair at the same offset of two 16-bit halves") {
  const layout::RegisterLayout fragment = layout::local({4, 1}) * layout::local({1, 2}) * layout::mma_m16n8k16_b();
  for (int bits : {1, 2, 3, 4, 5, 6, 7, 8}) {
    CAPTURE(bits);
    const auto packed = programs::half_split_layout(fragment, bits);
    const std::int64_t d = 16 / std::gcd(bits, 16);  // slots between a pair's codes: d * bits is a multiple of 16
    for (std::int64_t t = 0; t < 32; ++t)
      for (std::int64_t j = 0; j < fragment.local_size() / 2; ++j) {
        // The fragment's pair j (slots 2j, 2j+1) in the packed order: same thread, d slots apart.
        const auto p0 = packed.map(fragment.logical_index(t, 2 * j)), p1 = packed.map(fragment.logical_index(t, 2 * j + 1));
        CHECK(p0.thread == t);
        CHECK(p1.thread == t);
        CHECK(p0.local % (2 * d) < d);
        CHECK(p1.local == p0.local + d);
        CHECK((p0.local * bits) % 16 == (p1.local * bits) % 16);  // same offset in their halves
        if (16 % bits == 0) CHECK(p0.local * bits / 32 == p1.local * bits / 32);  // 1, 2, 4, 8 bits: one word
      }
  }
  // Lanes holding fewer than 2d codes keep the fragment order.
  CHECK(programs::half_split_layout(layout::mma_m16n8k16_b(), 1) == layout::mma_m16n8k16_b());
  const layout::RegisterLayout sixteen = layout::local({2, 1}) * layout::local({1, 2}) * layout::mma_m16n8k16_b();
  CHECK(programs::half_split_layout(sixteen, 3) == sixteen);  // 3 bits pair codes 16 slots apart: 32 needed
  CHECK_FALSE(programs::half_split_layout(sixteen, 6) == sixteen);  // 6 bits: 8 apart
  // A fragment whose innermost slots are not pairs is refused by name.
  CHECK_THROWS_WITH(programs::half_split_layout(layout::spatial({32}) * layout::local({8}), 4),
                    doctest::Contains("half_split_layout(spatial(32) * local(8), 4 bits): the innermost local slots are not pairs"));
}

TEST_CASE("formats beyond f16: split activations and bf16 mma, or (zeros, shared decode) f32-scaled weights") {
  const programs::Schedule sd{4, 1, 4, 1, false, 1, false, true};
  for (const char* name : {"f8e7m0", "f8e6m1", "f7e6m0"}) {
    const DataType t = isa::parse_dtype(name);
    CAPTURE(name);
    const QuantFormat f{t, DataType::f16(), 64, ZeroMode::None};
    // Split: the kernel reads As, decodes the codes to bf16 (exact) and multiplies twice, A_hi then A_lo.
    CHECK(programs::splits_activations(f, {}));
    const std::string split = vm::print(programs::quant_matmul(f));
    CHECK(split.find("(As: ptr<bf16>, ") != std::string::npos);
    CHECK(split.find("A: ptr") == std::string::npos);
    // The codes' fields moved into bf16's are the values times 2^(bias - 127): A carries 2^(127 - bias)
    // (split_activations), so the cast keeps that factor and multiplies nothing.
    const int fields = 127 - t.exponent_bias();
    CHECK(split.find(fmt::format("{{dtype=bf16, exp={}, finite}}", -fields)) != std::string::npos);
    CHECK(programs::split_exponent(f) == fields);
    CHECK(vm::print(programs::split_activations(f)).find(fmt::format("{{dtype=f32, exp={}}}", fields)) != std::string::npos);
    std::size_t dots = 0;
    for (auto at = split.find("dot %part, "); at != std::string::npos; at = split.find("dot %part, ", at + 1)) ++dots;
    CHECK(dots == 2);
    // Not with bf16 activations (the mma is bf16 already), zero points or shared decode.
    CHECK_FALSE(programs::splits_activations({t, DataType::bf16(), 64, ZeroMode::None}, {}));
    CHECK_FALSE(programs::splits_activations({t, DataType::f16(), 64, ZeroMode::Float}, {}));
    CHECK_FALSE(programs::splits_activations(f, sd));
    // Shared decode: each weight scaled through f32, without a multiply per weight (the scale carries
    // 2^(127 - bias)).
    const int k = 127 - t.exponent_bias();
    const std::string text = vm::print(programs::quant_matmul(f, sd));
    CHECK(text.find(fmt::format("{{dtype=f32, exp={}, finite}}", -k)) != std::string::npos);  // the codes' cast
    CHECK(text.find(fmt::format("{{dtype=f32, exp={}}}", k)) != std::string::npos);   // the scale's cast
    // Float zero points are subtracted from the true values: no rescale then.
    const std::string zeros = vm::print(programs::quant_matmul({t, DataType::f16(), 64, ZeroMode::Float}));
    CHECK(zeros.find("exp=") == std::string::npos);
    CHECK(zeros.find("(A: ptr<f16>, ") != std::string::npos);
    // And the results match the reference on the interpreter.
    for (const programs::Schedule& s : {programs::Schedule{2, 1, 3, 2}, programs::Schedule{1, 1, 0, 1, true}}) {
      auto p = testing::make_problem(f, 3, 32, 128, 77);
      testing::run_schedule(p, s, [](const vm::Program& prog, const vm::Arguments& args) { vm::interpret(prog, args); });
      CHECK(testing::relative_error(p) <= testing::tolerance(p.format, 128));
    }
  }
}

namespace {

// a rounded to nearest (ties to even) at 8 significant bits, the bf16 value of a finite f16 (whose exponents
// bf16 holds): independent of isa::encode.
double round_to_8_bits(double a) {
  if (a == 0) return a;
  int e = 0;
  const double m = std::frexp(a, &e);  // a = m 2^e, 0.5 <= |m| < 1
  return std::ldexp(std::nearbyint(std::ldexp(m, 8)), e - 8);
}

}  // namespace

TEST_CASE("split_activations: A_hi + A_lo is every finite f16 times 2^e exactly, A_hi the nearest bf16 up to 65280") {
  // The 63488 finite f16 codes (every code but exponent 31) as a 62 x 1024 A.
  const std::int64_t M = 62, K = 1024;
  std::vector<std::uint8_t> a(static_cast<std::size_t>(M * K) * 2);
  std::size_t i = 0;
  for (std::uint32_t code = 0; code < 0x10000; ++code)
    if ((code & 0x7c00) != 0x7c00) isa::write_code(a, i++, 16, code);
  REQUIRE(i == static_cast<std::size_t>(M * K));
  // e = 127 - bias of the weights (f8e6m1: bias 31, f8e7m0: 63, f6e5m0: 15), none for integers, and at most
  // 112 (f8e4m3: bias 7), where the largest bf16 below 2^16, 65280, times 2^e is the largest finite bf16.
  const std::initializer_list<std::pair<const char*, int>> formats{{"int4", 0}, {"f8e6m1", 96}, {"f8e7m0", 64}, {"f6e5m0", 112}, {"f8e4m3", 112}};
  for (const auto& [weights, e] : formats) {
    CAPTURE(weights);
    const QuantFormat f{isa::parse_dtype(weights), DataType::f16(), 128, ZeroMode::None};
    CHECK(programs::split_exponent(f) == e);
    std::vector<std::uint8_t> as(static_cast<std::size_t>(2 * M * K) * 2, 0xff);
    vm::Arguments args;
    args.buffers["A"] = std::span<std::uint8_t>(a);
    args.buffers["As"] = std::span<std::uint8_t>(as);
    args.scalars = {{"M", M}, {"N", 16}, {"K", K}};
    vm::interpret(programs::split_activations(f), args);
    int wrong = 0;
    for (std::size_t j = 0; j < i; ++j) {
      const double v = std::ldexp(isa::decode(DataType::f16(), isa::read_code(a, j, 16)), e);
      const double hi = isa::decode(DataType::bf16(), isa::read_code(as, j, 16));
      const double lo = isa::decode(DataType::bf16(), isa::read_code(as, j + i, 16));
      // A_hi: A rounded to bf16, its magnitude at most 65280 (A beyond it would round to 2^16).
      const double a16 = std::ldexp(v, -e), expected_hi = std::copysign(std::min(std::fabs(round_to_8_bits(a16)), 65280.0), a16);
      if (hi != std::ldexp(expected_hi, e) || hi + lo != v || std::signbit(hi) != std::signbit(v) || !std::isfinite(hi)) ++wrong;
    }
    CHECK(wrong == 0);
  }
  CHECK_THROWS_WITH_AS(programs::split_activations({DataType::signed_int(4), DataType::bf16(), 128, ZeroMode::None}),
                       doctest::Contains("split_activations: activations must be f16, not bf16"), Error);
}

TEST_CASE("a stage's weight chunks come in one copy exactly where one chunk does not split evenly over the threads") {
  // 4 warps = 128 threads; a chunk of 8 K steps holds 128 streams of 8b bytes: 64b 16-byte pieces.
  // 3-bit: 192 pieces (1.5 a thread), 1-bit: 64, 5-bit: 320, 7-bit: 448 -> one copy for the stage's chunks;
  // 2-bit: 128 and 6-bit: 384 split evenly -> a copy per chunk; 4 and 8-bit streams are stored in pieces.
  for (int bits = 1; bits <= 8; ++bits) {
    CAPTURE(bits);
    const QuantFormat f{DataType::unsigned_int(bits), DataType::f16(), 128, ZeroMode::None};
    const std::string text = vm::print(programs::quant_matmul(f, programs::Schedule{4, 1, 4, 1, true, 4}));
    std::size_t copies = 0;
    for (auto at = text.find("copy_async %sW"); at != std::string::npos; at = text.find("copy_async %sW", at + 1)) ++copies;
    const bool joint = bits % 2 == 1;
    // the prologue's three issues and the loop's one
    CHECK(copies == (joint ? 4u : 16u));
    CHECK((text.find("%gWchunks") != std::string::npos) == joint);
  }
}
