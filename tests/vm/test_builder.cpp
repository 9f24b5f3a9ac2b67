// The builder: programs read naturally, every call type-checks with its call site in the message.
#include <doctest/doctest.h>

#include "isa/error.h"
#include "layout/mma_layouts.h"
#include "programs/examples.h"
#include "vm/builder.h"

using namespace anybit;
using namespace anybit::layout;
using isa::DataType;

namespace {

const DataType f16 = DataType::f16(), f32 = DataType::f32();

// Runs `fn`, expecting an anybit::Error whose message names this file, the given line and `text`.
template <typename Fn>
void expect_builder_error(Fn fn, int line, const std::string& text) {
  try {
    fn();
    FAIL("no error for: " << text);
  } catch (const Error& e) {
    const std::string msg = e.what();
    CAPTURE(msg);
    CHECK(msg.find(fmt::format("test_builder.cpp:{}", line)) != std::string::npos);
    CHECK(msg.find(text) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("the example programs build, verify and print as readable .vm text") {
  const auto add = programs::vector_add();
  CHECK(add.warps == 2);
  CHECK(vm::print(add).find("%sum = add %x, %y") != std::string::npos);
  const auto mm = programs::tiled_matmul();
  CHECK(vm::print(mm).find("dot %acc, %a, %b") != std::string::npos);
  CHECK(vm::verify(mm).shared.total_bytes == 32 * 16 * 2 + 16 * 16 * 2);
  const auto dq = programs::dequant_fragment(DataType::signed_int(3), f16);
  CHECK(vm::print(dq).find("%codes = view %bytes : int3[16,16] @ column_local(2,2) * spatial(8,4) * local(1,2)") !=
        std::string::npos);
}

TEST_CASE("builder errors carry the call site and name the problem") {
  vm::Builder b("errors", 1);
  auto p = b.pointer("p", f32);
  auto n = b.i32("n");
  auto view = b.global_view(p, {n}, {1});
  auto x = b.load_global(view, {0}, vm::reg(f32, {32}, spatial({32})));
  auto h = b.cast(x, f16);
  expect_builder_error([&] { b.add(x, h); }, __LINE__, "add: add operands must have one dtype, got f32 and f16");
  expect_builder_error([&] { b.load_global(view, {0}, vm::reg(f16, {32}, spatial({32}))); }, __LINE__,
                       "the register tile is f16 but the memory is f32; insert a cast");
  expect_builder_error([&] { b.load_global(view, {0}, vm::reg(f32, {64}, spatial({64}))); }, __LINE__,
                       "over 64 threads but the block has 32 (1 warps)");
  expect_builder_error([&] { b.view(x, vm::reg(DataType::signed_int(3), {32}, spatial({32}))); }, __LINE__,
                       "view needs equal bits per thread");
  expect_builder_error([&] { b.dot(x, x, x); }, __LINE__, "not mutable; allocate it with alloc_register");
  auto shared_in_loop = [&](isa::Expr) { b.alloc_shared(f32, SharedLayout::row_major({8})); };
  const int loop_line = __LINE__ - 1;
  expect_builder_error([&] { b.for_range("k", 0, 4, shared_in_loop); }, loop_line,
                       "alloc_shared: shared tiles must be allocated at the top level");
  expect_builder_error([&] { b.i32("n"); }, __LINE__, "'n' is not a valid new parameter name");
  expect_builder_error([&] { b.let("n", 3); }, __LINE__, "'n' is not a valid new name");
  expect_builder_error([&] { b.reduce(x, {1}, "add"); }, __LINE__, "reduce dimension 1 out of range for rank 1");
  expect_builder_error([&] { b.name(x, "bad name"); }, __LINE__, "'bad name' is not a valid unused value name");
  // A failed call leaves the builder usable: the valid program still builds.
  b.store_global(x, view, {0});
  CHECK_NOTHROW(b.build());
}

TEST_CASE("build() runs the whole-program verifier, whose messages name builder call sites") {
  vm::Builder b("pending", 1);
  auto p = b.pointer("p", f16);
  auto view = b.global_view(p, {64}, {1});
  auto s = b.alloc_shared(f16, SharedLayout::row_major({64}));
  const int line = __LINE__ + 1;
  b.copy_async(s, {0}, view, {0}, {64});
  b.commit_group();
  try {
    b.build();
    FAIL("expected an error");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find(fmt::format("test_builder.cpp:{}: copy_async: the program ends with async copy groups pending", line)) !=
          std::string::npos);
  }
}

TEST_CASE("a tiled matmul with dot reads naturally in the builder") {
  // A smaller cousin of programs::tiled_matmul: one warp, one m16n8 fragment, K loop over registers only.
  vm::Builder b("warp_mma", 1);
  auto pa = b.pointer("A", f16), pb = b.pointer("B", f16), pc = b.pointer("C", f32);
  auto K = b.i32("K");
  auto A = b.global_view(pa, {16, K}, {K, 1});
  auto B = b.global_view(pb, {K, 8}, {8, 1});
  auto C = b.global_view(pc, {16, 8}, {8, 1});
  auto acc = b.name(b.alloc_register(vm::reg(f32, {16, 8}, mma_m16n8k16_c())), "acc");
  b.for_range("k", 0, K / 16, [&](isa::Expr k) {
    auto a = b.load_global(A, {0, k * 16}, vm::reg(f16, {16, 16}, mma_m16n8k16_a()));
    auto bf = b.load_global(B, {k * 16, 0}, vm::reg(f16, {16, 8}, mma_m16n8k16_b()));
    b.dot(acc, a, bf);
  }, /*unroll=*/2);
  b.store_global(acc, C, {0, 0});
  const auto prog = b.build();
  const std::string text = vm::print(prog);
  CHECK(text.find("for k in range(0, K / 16) unroll(2) {") != std::string::npos);
  CHECK(vm::parse(text) == prog);
}
