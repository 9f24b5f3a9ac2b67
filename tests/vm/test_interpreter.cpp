// Interpreter: example programs against plain host references, exact semantics, runtime errors.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "isa/bitpack.h"
#include "isa/error.h"
#include "programs/examples.h"
#include "vm/host_buffers.h"
#include "vm/interpreter.h"

using namespace anybit;
using isa::DataType;

namespace {

const DataType f16 = DataType::f16(), f32 = DataType::f32(), bf16 = DataType::bf16();

double element(const std::vector<std::uint8_t>& buf, DataType t, std::size_t i) {
  return isa::decode(t, isa::read_code(buf, i, t.bits()));
}

vm::HostBuffers run(const vm::Program& p, std::map<std::string, std::int64_t> scalars, std::uint64_t seed) {
  auto buffers = vm::random_buffers(p, scalars, seed);
  vm::interpret(p, vm::as_arguments(buffers, scalars));
  return buffers;
}

vm::HostBuffers run_text(const std::string& text, std::map<std::string, std::int64_t> scalars, std::uint64_t seed = 1) {
  return run(vm::parse(text, "t.vm"), std::move(scalars), seed);
}

}  // namespace

TEST_CASE("vector_add matches a host loop for tails of every size") {
  for (int n : {1, 63, 255, 256, 257, 1000}) {
    CAPTURE(n);
    auto b = run(programs::vector_add(), {{"n", n}}, static_cast<std::uint64_t>(n));
    for (int i = 0; i < n; ++i) {
      const float want = static_cast<float>(element(b["a"], f32, i)) + static_cast<float>(element(b["b"], f32, i));
      REQUIRE(element(b["c"], f32, i) == want);
    }
  }
}

TEST_CASE("tiled_matmul matches the host matmul on odd shapes") {
  for (auto [M, N, K] : {std::tuple{1, 8, 16}, {32, 16, 16}, {45, 40, 72}, {17, 3, 5}, {64, 48, 128}}) {
    CAPTURE(M);
    CAPTURE(N);
    CAPTURE(K);
    auto b = run(programs::tiled_matmul(), {{"M", M}, {"N", N}, {"K", K}}, 42);
    std::vector<float> a(M * K), w(K * N);
    for (int i = 0; i < M * K; ++i) a[i] = static_cast<float>(element(b["A"], f16, i));
    for (int i = 0; i < K * N; ++i) w[i] = static_cast<float>(element(b["B"], f16, i));
    const auto ref = programs::reference_matmul(a, w, M, N, K);
    for (int i = 0; i < M * N; ++i) REQUIRE(std::fabs(element(b["C"], f32, i) - ref[i]) <= 1e-6 * K);
  }
}

TEST_CASE("view of packed bytes as codes in the mma layout is bit-exact for every format and target") {
  for (DataType code : isa::all_dtypes()) {
    if (code.bits() > 8 || code.is_bool()) continue;
    for (DataType out : {f16, bf16, f32}) {
      CAPTURE(code.name());
      CAPTURE(out.name());
      auto b = run(programs::dequant_fragment(code, out), {{"blocks", 2}}, 7);
      const auto codes = programs::reference_fragment_codes(b["q"], code.bits(), 2);
      for (std::size_t i = 0; i < codes.size(); ++i) {
        const double want = isa::decode(out, isa::encode(out, isa::decode(code, codes[i])));
        const double got = element(b["out"], out, i);
        REQUIRE((got == want || (std::isnan(got) && std::isnan(want))));
      }
    }
  }
}

TEST_CASE("fma rounds once; mul then add rounds twice") {
  // a*b = 1 + 2^-9 + 2^-20 exactly; c = -(1 + 2^-9). fma gives 2^-20, mul-then-add gives 0 in f16.
  const std::string text = R"(program f(x: ptr<f16>, out: ptr<f16>) grid(1) warps(1) {
  %v = global_view x {shape=[3, 32], strides=[32, 1]}
  %o = global_view out {shape=[2, 32], strides=[32, 1]}
  %a = load_global %v[0, 0] : f16[1,32] @ spatial(1,32)
  %b = load_global %v[1, 0] : f16[1,32] @ spatial(1,32)
  %c = load_global %v[2, 0] : f16[1,32] @ spatial(1,32)
  %fused = fma %a, %b, %c
  %p = mul %a, %b
  %split = add %p, %c
  store_global %fused, %o[0, 0]
  store_global %split, %o[1, 0]
}
)";
  const vm::Program p = vm::parse(text);
  vm::HostBuffers b;
  b["x"].resize(3 * 32 * 2);
  b["out"].resize(2 * 32 * 2);
  const double a = 1 + std::ldexp(1.0, -10), c = -(1 + std::ldexp(1.0, -9));
  for (int i = 0; i < 32; ++i) {
    isa::write_code(b["x"], i, 16, isa::encode(f16, a));
    isa::write_code(b["x"], 32 + i, 16, isa::encode(f16, a));
    isa::write_code(b["x"], 64 + i, 16, isa::encode(f16, c));
  }
  vm::interpret(p, vm::as_arguments(b, {}));
  CHECK(element(b["out"], f16, 0) == std::ldexp(1.0, -20));
  CHECK(element(b["out"], f16, 32) == 0.0);
}

TEST_CASE("integer arithmetic wraps to the width; cast saturates") {
  const std::string text = R"(program w(x: ptr<int4>, out: ptr<int4>, sat: ptr<int4>) grid(1) warps(1) {
  %v = global_view x {shape=[64], strides=[1]}
  %o = global_view out {shape=[32], strides=[1]}
  %s = global_view sat {shape=[32], strides=[1]}
  %a = load_global %v[0] : int4[32] @ spatial(32)
  %b = load_global %v[32] : int4[32] @ spatial(32)
  %sum = add %a, %b
  store_global %sum, %o[0]
  %wide = cast %a {dtype=int8}
  %wide2 = cast %b {dtype=int8}
  %wsum = add %wide, %wide2
  %back = cast %wsum {dtype=int4}
  store_global %back, %s[0]
}
)";
  auto b = run_text(text, {}, 3);
  for (int i = 0; i < 32; ++i) {
    const int a = static_cast<int>(element(b["x"], DataType::signed_int(4), i));
    const int c = static_cast<int>(element(b["x"], DataType::signed_int(4), 32 + i));
    const int wrapped = ((a + c + 8) % 16 + 16) % 16 - 8;
    CHECK(element(b["out"], DataType::signed_int(4), i) == wrapped);
    CHECK(element(b["sat"], DataType::signed_int(4), i) == std::clamp(a + c, -8, 7));
  }
}

TEST_CASE("reduce sums over a dimension; replicated results agree") {
  const std::string text = R"(program r(x: ptr<f32>, out: ptr<f32>) grid(1) warps(1) {
  %v = global_view x {shape=[8, 32], strides=[32, 1]}
  %o = global_view out {shape=[8, 1], strides=[1, 1]}
  %a = load_global %v[0, 0] : f32[8,32] @ spatial(8,4) * local(1,8)
  %s = reduce %a {dims=[1], op=add}
  store_global %s, %o[0, 0]
}
)";
  auto b = run_text(text, {}, 5);
  for (int r = 0; r < 8; ++r) {
    double want = 0;
    for (int c = 0; c < 32; ++c) want += element(b["x"], f32, r * 32 + c);
    CHECK(element(b["out"], f32, r) == static_cast<float>(want));
  }
}

TEST_CASE("view there and back restores the bits") {
  const std::string text = R"(program v(x: ptr<uint8>, out: ptr<uint8>) grid(1) warps(1) {
  %v = global_view x {shape=[32, 3], strides=[3, 1]}
  %o = global_view out {shape=[32, 3], strides=[3, 1]}
  %bytes = load_global %v[0, 0] : uint8[32,3] @ spatial(32,1) * local(1,3)
  %codes = view %bytes : f6e3m2[16,8] @ local(2,1) * spatial(8,4) * local(1,2)
  %again = view %codes : uint8[32,3] @ spatial(32,1) * local(1,3)
  store_global %again, %o[0, 0]
}
)";
  auto b = run_text(text, {}, 9);
  CHECK(b["out"] == b["x"]);
}

TEST_CASE("runtime errors name the instruction and the element") {
  const std::string oob = R"(program o(x: ptr<f32>, n: i32) grid(1) warps(1) {
  %v = global_view x {shape=[n], strides=[1]}
  %a = load_global %v[0] : f32[32] @ spatial(32)
  store_global %a, %v[0]
}
)";
  const vm::Program p = vm::parse(oob, "o.vm");
  vm::HostBuffers b;
  b["x"].resize(16 * 4);
  CHECK_THROWS_WITH_AS(vm::interpret(p, vm::as_arguments(b, {{"n", 16}})),
                       doctest::Contains("o.vm:3:3: load_global: element [16] is outside the view %v of shape [16]; add {masked}"),
                       Error);
  CHECK_THROWS_WITH_AS(vm::interpret(p, vm::as_arguments(b, {{"n", 40}})),
                       doctest::Contains("element [16] of %v is at element offset 16, outside buffer 'x' of 64 bytes"), Error);
  CHECK_THROWS_WITH_AS(vm::interpret(p, vm::as_arguments(b, {})), doctest::Contains("no value given for parameter 'n'"), Error);
  CHECK_THROWS_WITH_AS(vm::interpret(p, vm::Arguments{{}, {{"n", 16}}}), doctest::Contains("no buffer given for pointer parameter 'x'"),
                       Error);
}

TEST_CASE("async copies land at wait_group; reading an in-flight copy is an error") {
  // Offsets 0 and 0 * k differ as text, so the verifier's static rule lets this through; the interpreter
  // still catches the read of the in-flight copy.
  const std::string text = R"(program a(x: ptr<f32>, out: ptr<f32>) grid(1) warps(1) {
  %v = global_view x {shape=[64], strides=[1]}
  %o = global_view out {shape=[64], strides=[1]}
  %s = alloc_shared : shared f32[64] @ row_major(64)
  let zero = 0
  copy_async %s[0], %v[0] {shape=[32]}
  commit_group
  copy_async %s[32], %v[32] {shape=[32]}
  commit_group
  wait_group {n=1}
  sync_threads
  %first = load_shared %s[zero] : f32[32] @ spatial(32)
  store_global %first, %o[0]
  %second = load_shared %s[32 + zero] : f32[32] @ spatial(32)
  wait_group {n=0}
}
)";
  const vm::Program p = vm::parse(text, "a.vm");
  auto b = vm::random_buffers(p, {}, 11);
  CHECK_THROWS_WITH_AS(vm::interpret(p, vm::as_arguments(b, {})),
                       doctest::Contains("a.vm:14:3: load_shared: reads shared tile %s where a copy_async is still in flight"),
                       Error);
  // The first group did land before the failing read.
  for (int i = 0; i < 32; ++i) CHECK(element(b["out"], f32, i) == element(b["x"], f32, i));
}

TEST_CASE("masked=[D]: zeros outside the view along the named dimensions, an error along the others") {
  const std::string text = R"(program m(x: ptr<f32>, out: ptr<f32>, r: i32, c: i32) grid(1) warps(1) {
  %v = global_view x {shape=[r, c], strides=[c, 1]}
  %o = global_view out {shape=[8, 8], strides=[8, 1]}
  %s = alloc_shared : shared f32[8,8] @ row_major(8,8)
  copy_async %s[0, 0], %v[0, 0] {shape=[8, 8], masked=[0]}
  commit_group
  wait_group {n=0}
  sync_threads
  %t = load_shared %s[0, 0] : f32[8,8] @ spatial(8,4) * local(1,2)
  %u = load_global %v[0, 0] : f32[8,8] @ spatial(8,4) * local(1,2) {masked=[0]}
  %w = add %t, %u
  store_global %w, %o[0, 0]
}
)";
  const vm::Program p = vm::parse(text, "m.vm");
  vm::HostBuffers b;
  b["x"].assign(64 * 4, 0);
  for (int i = 0; i < 64; ++i) {
    const float f = static_cast<float>(i + 1);
    std::memcpy(b["x"].data() + 4 * i, &f, 4);
  }
  b["out"].assign(64 * 4, 0xFF);
  // Rows past r read zeros (copy and load alike); every column is inside.
  vm::interpret(p, vm::as_arguments(b, {{"r", 5}, {"c", 8}}));
  for (int i = 0; i < 64; ++i) CHECK(element(b["out"], f32, i) == (i < 40 ? 2.0 * (i + 1) : 0.0));
  // A column past c is outside along dimension 1, which the copy does not mask.
  CHECK_THROWS_WITH_AS(vm::interpret(p, vm::as_arguments(b, {{"r", 8}, {"c", 6}})),
                       doctest::Contains("m.vm:5:3: copy_async: element [0, 6] is outside the view %v of shape [8, 6] along "
                                         "dimension 1, which masked=[0] does not name"),
                       Error);
}

TEST_CASE("copy_async: masked zero-fills outside the view, unmasked is an error there") {
  const std::string text = R"(program z(x: ptr<f16>, out: ptr<f16>, n: i32) grid(1) warps(1) {
  %v = global_view x {shape=[n], strides=[1]}
  %o = global_view out {shape=[64], strides=[1]}
  %s = alloc_shared : shared f16[64] @ row_major(64)
  copy_async %s[0], %v[0] {shape=[64], masked}
  commit_group
  wait_group {n=0}
  sync_threads
  %t = load_shared %s[0] : f16[64] @ spatial(32) * local(2)
  store_global %t, %o[0]
}
)";
  const vm::Program p = vm::parse(text);
  // Without {masked} the copy asserts that every element is inside the view: n = 40 breaks it, n = 64 not.
  std::string unmasked = text;
  unmasked.replace(unmasked.find(", masked}"), 9, "}");
  const vm::Program u = vm::parse(unmasked, "u.vm");
  vm::HostBuffers ub;
  ub["x"].assign(64 * 2, 0x3C);
  ub["out"].assign(64 * 2, 0xFF);
  CHECK_THROWS_WITH_AS(vm::interpret(u, vm::as_arguments(ub, {{"n", 40}})),
                       doctest::Contains("u.vm:5:3: copy_async: element [40] is outside the view %v of shape [40]; add {masked}"),
                       Error);
  vm::interpret(u, vm::as_arguments(ub, {{"n", 64}}));
  for (int i = 0; i < 64; ++i) CHECK(element(ub["out"], f16, i) == element(ub["x"], f16, 0));
  vm::HostBuffers b;
  b["x"].assign(64 * 2, 0x3C);  // 0x3C3C: every f16 is 1.0546875
  b["out"].assign(64 * 2, 0xFF);
  vm::interpret(p, vm::as_arguments(b, {{"n", 40}}));
  for (int i = 0; i < 64; ++i) CHECK(element(b["out"], f16, i) == (i < 40 ? element(b["x"], f16, 0) : 0.0));
}

TEST_CASE("buffers are sized from the views and refuse absurd sizes") {
  const auto p = programs::tiled_matmul();
  const auto sizes = vm::buffer_sizes(p, {{"M", 3}, {"N", 5}, {"K", 7}});
  CHECK(sizes.at("A") == 3 * 7 * 2);
  CHECK(sizes.at("B") == 7 * 5 * 2);
  CHECK(sizes.at("C") == 3 * 5 * 4);
  CHECK(vm::buffer_sizes(programs::dequant_fragment(DataType::signed_int(3), f16), {{"blocks", 2}}).at("q") == 2 * 32 * 3);
  CHECK_THROWS_WITH_AS(vm::buffer_sizes(p, {{"M", 65536}, {"N", 5}, {"K", 65536}}), doctest::Contains("over the 4 GiB limit"),
                       Error);
  CHECK_THROWS_WITH_AS(vm::buffer_sizes(p, {{"M", 3}}), doctest::Contains("cannot size buffer 'A'"), Error);
}

TEST_CASE("a cast marked finite converts finite codes and reports a NaN or inf one by element") {
  const std::string text = R"(program finite(x: ptr<f8e5m2>, y: ptr<f16>) grid(1) warps(1) {
  %gx = global_view x {shape=[32], strides=[1]}
  %gy = global_view y {shape=[32], strides=[1]}
  %a = load_global %gx[0] : f8e5m2[32] @ spatial(32)
  %b = cast %a {dtype=f16, finite}
  store_global %b, %gy[0]
}
)";
  const auto p = vm::parse(text, "t.vm");
  CHECK(vm::print(p) == text);
  auto buffers = vm::random_buffers(p, {}, 1);
  // f8e5m2 is f16's top byte: 1.0, -2.0, the largest finite 57344, the smallest subnormal 2^-16.
  const std::uint32_t codes[] = {0x3c, 0xc0, 0x7b, 0x01};
  for (std::size_t i = 0; i < 32; ++i) isa::write_code(buffers.at("x"), i, 8, codes[i % 4]);
  vm::interpret(p, vm::as_arguments(buffers, {}));
  for (std::size_t i = 0; i < 32; ++i) CHECK(isa::read_code(buffers.at("y"), i, 16) == codes[i % 4] << 8);
  for (const auto& [code, what] : {std::pair{0x7cu, "inf"}, {0xfdu, "NaN"}, {0xfcu, "-inf"}}) {
    CAPTURE(what);
    isa::write_code(buffers.at("x"), 9, 8, code);
    const std::string message = fmt::format("cast: element [9] of %a is {}", what);
    CHECK_THROWS_WITH_AS(vm::interpret(p, vm::as_arguments(buffers, {})), doctest::Contains(message.c_str()), Error);
  }
  // Only cast takes it.
  CHECK_THROWS_WITH_AS(vm::parse("program p(x: ptr<f16>) grid(1) warps(1) {\n  %g = global_view x {shape=[1], strides=[1], finite}\n}\n"),
                       doctest::Contains("global_view does not take the attribute 'finite'"), Error);
}

TEST_CASE("a cast with a declared layout converts each element into its new slot") {
  // Each thread's four elements, stored row-major in its slots before and column-major after.
  const auto out = run_text(R"(program reorder(x: ptr<f32>, y: ptr<f16>) grid(1) warps(1) {
  %gx = global_view x {shape=[2, 64], strides=[64, 1]}
  %gy = global_view y {shape=[2, 64], strides=[64, 1]}
  %a = load_global %gx[0, 0] : f32[2,64] @ spatial(1,32) * local(2,2)
  %b = cast %a : f16[2,64] @ spatial(1,32) * column_local(2,2) {dtype=f16}
  store_global %b, %gy[0, 0]
}
)",
                            {}, 5);
  for (std::size_t i = 0; i < 128; ++i) {
    const double x = isa::decode(DataType::f32(), isa::read_code(out.at("x"), i, 32));
    CHECK(isa::decode(DataType::f16(), isa::read_code(out.at("y"), i, 16)) == isa::decode(DataType::f16(), isa::encode(DataType::f16(), x)));
  }
}

TEST_CASE("a cast with exp=k multiplies by 2^k before its one rounding") {
  const auto p = vm::parse(R"(program scaled(x: ptr<f8e4m3>, y: ptr<f16>) grid(1) warps(1) {
  %gx = global_view x {shape=[32], strides=[1]}
  %gy = global_view y {shape=[32], strides=[1]}
  %a = load_global %gx[0] : f8e4m3[32] @ spatial(32)
  %b = cast %a {dtype=f16, exp=-8}
  store_global %b, %gy[0]
}
)",
                           "t.vm");
  auto buffers = vm::random_buffers(p, {}, 1);
  // e4m3 codes and the f16 bits of value x 2^-8, worked by hand: 1.0 -> 2^-8; the smallest subnormal
  // 2^-9 -> 2^-17 (an f16 subnormal, 128 x 2^-24); the largest, 448 -> 1.75; -1.0; the NaN code.
  const std::pair<std::uint32_t, std::uint32_t> cases[] = {{0x38, 0x1C00}, {0x01, 0x0080}, {0x7e, 0x3F00}, {0xb8, 0x9C00}};
  for (std::size_t i = 0; i < 32; ++i) isa::write_code(buffers.at("x"), i, 8, i < 4 ? cases[i].first : 0x7f);
  vm::interpret(p, vm::as_arguments(buffers, {}));
  for (std::size_t i = 0; i < 4; ++i) CHECK(isa::read_code(buffers.at("y"), i, 16) == cases[i].second);
  CHECK(std::isnan(element(buffers.at("y"), f16, 5)));
}
