// Layout inference: before/after programs, defaults, dot operands from the accumulator, conflicts.
#include <doctest/doctest.h>

#include "isa/error.h"
#include "layout/mma_layouts.h"
#include "passes/infer_layouts.h"
#include "programs/examples.h"
#include "vm/builder.h"
#include "vm/host_buffers.h"
#include "vm/interpreter.h"

using namespace anybit;
using namespace anybit::layout;
using isa::DataType;

namespace {

const isa::Instruction& defining(const vm::Body& body, const std::string& name) {
  for (const auto& st : body) {
    if (const auto* inst = std::get_if<isa::Instruction>(&st.node); inst && inst->result == name) return *inst;
    if (const auto* loop = std::get_if<vm::For>(&st.node)) {
      for (const auto& inner : loop->body)
        if (const auto* inst = std::get_if<isa::Instruction>(&inner.node); inst && inst->result == name) return *inst;
    }
  }
  FAIL("no instruction defines %" << name);
  throw std::logic_error("unreachable");
}

RegisterLayout layout_of(const vm::Program& p, const std::string& name) { return *defining(p.body, name).type->layout; }

}  // namespace

TEST_CASE("coalesced defaults: 16-byte vectors along the last dimension, then threads, then local slots") {
  CHECK(passes::default_layout({256}, DataType::f32(), 64) == spatial({64}) * local({4}));
  CHECK(passes::default_layout({64, 64}, DataType::f16(), 128) == local({4, 1}) * spatial({16, 8}) * local({1, 8}));
  CHECK(passes::default_layout({8}, DataType::f32(), 32) == replicated(4) * spatial({8}));
  CHECK(passes::default_layout({4, 8}, DataType::signed_int(8), 32) == spatial({4, 8}));
  CHECK(passes::default_layout({32, 3}, DataType::unsigned_int(8), 32) == spatial({32, 1}) * local({1, 3}));
  CHECK(passes::default_layout({16, 64}, DataType::signed_int(4), 32) == spatial({16, 2}) * local({1, 32}));
}

TEST_CASE("open layouts flow through elementwise instructions; the program then runs") {
  const auto p = vm::parse(R"(program open_add(a: ptr<f32>, b: ptr<f32>, c: ptr<f32>, n: i32) grid(ceil_div(n, 256)) warps(2) {
  %va = global_view a {shape=[n], strides=[1]}
  %vb = global_view b {shape=[n], strides=[1]}
  %vc = global_view c {shape=[n], strides=[1]}
  %x = load_global %va[blockIdx.x * 256] : f32[256] {masked}
  %y = load_global %vb[blockIdx.x * 256] : f32[256] @ column_spatial(64) * local(4) {masked}
  %s = add %x, %y
  %h = cast %s {dtype=f16}
  %back = cast %h {dtype=f32}
  store_global %back, %vc[blockIdx.x * 256] {masked}
}
)");
  const auto q = passes::infer_layouts(p);
  CHECK(layout_of(q, "x") == spatial({64}) * local({4}));  // from %y through add, not the default
  CHECK(layout_of(q, "y").same_structure(*defining(p.body, "y").type->layout));  // given layouts stay
  std::map<std::string, std::int64_t> s = {{"n", 300}};
  auto b = vm::random_buffers(q, s, 1);
  CHECK_NOTHROW(vm::interpret(q, vm::as_arguments(b, s)));
}

TEST_CASE("dot operands follow the accumulator; with nothing given, a default warp arrangement") {
  // The tiled matmul with its fragment layouts left open must infer exactly the hand-written ones.
  const auto given = programs::tiled_matmul();
  std::string text = vm::print(given);
  for (const char* l : {" @ spatial(2,1) * replicated(2) * column_local(2,2) * spatial(8,4) * local(1,2)",
                        " @ replicated(2) * local(2,1) * column_spatial(4,16) * local(2,1)"}) {
    const auto at = text.find(l);
    REQUIRE(at != std::string::npos);
    text.erase(at, std::string(l).size());
  }
  const auto inferred = passes::infer_layouts(vm::parse(text));
  CHECK(layout_of(inferred, "a") == layout_of(given, "a"));
  CHECK(layout_of(inferred, "b") == layout_of(given, "b"));
  // Nothing given: warps over M tiles first, then N.
  const auto bare = text.replace(text.find(" @ spatial(2,2) * local(2,1) * spatial(8,4) * local(1,2)"),
                                 std::string(" @ spatial(2,2) * local(2,1) * spatial(8,4) * local(1,2)").size(), "");
  const auto defaulted = passes::infer_layouts(vm::parse(bare));
  CHECK(layout_of(defaulted, "acc") == spatial({2, 2}) * mma_m16n8k16_c());
  CHECK(layout_of(defaulted, "a") == layout_of(given, "a"));
}

TEST_CASE("reduce and reshape derive layouts across their operands") {
  const auto p = vm::parse(R"(program r(x: ptr<f32>, o: ptr<f32>, o2: ptr<f32>) grid(1) warps(1) {
  %v = global_view x {shape=[8, 32], strides=[32, 1]}
  %w = global_view o {shape=[8, 1], strides=[1, 1]}
  %u = global_view o2 {shape=[256], strides=[1]}
  %t = load_global %v[0, 0] : f32[8,32] @ spatial(8,4) * local(1,8)
  %m = reduce %t {dims=[1], op=add}
  %flat = reshape %t {shape=[256]}
  %twice = add %flat, %flat
  store_global %m, %w[0, 0]
  store_global %twice, %u[0]
}
)");
  CHECK_NOTHROW(passes::infer_layouts(p));
  const auto q = vm::parse(R"(program back(x: ptr<f32>, o: ptr<f32>) grid(1) warps(1) {
  %v = global_view x {shape=[256], strides=[1]}
  %w = global_view o {shape=[8, 32], strides=[32, 1]}
  %flat = load_global %v[0] : f32[256]
  %t = reshape %flat {shape=[8, 32]}
  %given = load_global %w[0, 0] : f32[8,32] @ spatial(8,4) * local(1,8)
  %s = add %t, %given
  store_global %s, %w[0, 0]
}
)");
  const auto inferred = passes::infer_layouts(q);
  CHECK(layout_of(inferred, "flat") == reshape(spatial({8, 4}) * local({1, 8}), {256}));
}

TEST_CASE("conflicting layouts are an error naming both sources") {
  const auto p = vm::parse(R"(program c(x: ptr<f32>) grid(1) warps(1) {
  %v = global_view x {shape=[64], strides=[1]}
  %a = load_global %v[0] : f32[64] @ spatial(32) * local(2)
  %b = load_global %v[0] : f32[64] @ local(2) * spatial(32)
  %h = cast %a {dtype=f16}
  %g = cast %b {dtype=f16}
  %s = add %h, %g
}
)", "c.vm");
  CHECK_THROWS_WITH_AS(vm::verify(p), doctest::Contains("add operands must have one layout"), Error);
  const auto q = vm::parse(R"(program c(x: ptr<f32>) grid(1) warps(1) {
  %v = global_view x {shape=[64], strides=[1]}
  %a = load_global %v[0] : f32[64] @ spatial(32) * local(2)
  %b = load_global %v[0] : f32[64] @ local(2) * spatial(32)
  %o = load_global %v[0] : f32[64]
  %s = add %a, %o
  %t = add %o, %b
}
)", "c.vm");
  CHECK_THROWS_WITH_AS(passes::infer_layouts(q), doctest::Contains("layout conflict at c.vm:7:3: add"), Error);
}

TEST_CASE("views between bytes and codes rescale the minor local mode, both ways") {
  const auto p = vm::parse(R"(program v(q: ptr<uint8>, o: ptr<f16>) grid(1) warps(1) {
  %vq = global_view q {shape=[32, 3], strides=[3, 1]}
  %vo = global_view o {shape=[32, 8], strides=[8, 1]}
  %bytes = load_global %vq[0, 0] : uint8[32,3] @ spatial(32,1) * local(1,3)
  %codes = view %bytes : int3[32,8]
  %h = cast %codes {dtype=f16}
  store_global %h, %vo[0, 0]
}
)");
  const auto q = passes::infer_layouts(p);
  CHECK(layout_of(q, "codes") == spatial({32, 1}) * local({1, 8}));
  // Codes given, bytes open: the bytes get the matching layout.
  const auto r = vm::parse(R"(program v(q: ptr<uint8>, o: ptr<f16>) grid(1) warps(1) {
  %vq = global_view q {shape=[32, 3], strides=[3, 1]}
  %vo = global_view o {shape=[32, 8], strides=[8, 1]}
  %bytes = load_global %vq[0, 0] : uint8[32,3]
  %codes = view %bytes : int3[32,8] @ spatial(32,1) * local(1,8)
  %h = cast %codes {dtype=f16}
  store_global %h, %vo[0, 0]
}
)");
  CHECK(layout_of(passes::infer_layouts(r), "bytes") == spatial({32, 1}) * local({1, 3}));
}
