// Simplification: before/after programs, and unchanged results.
#include <doctest/doctest.h>

#include "passes/simplify.h"
#include "programs/examples.h"
#include "vm/host_buffers.h"
#include "vm/interpreter.h"

using namespace anybit;
using isa::Expr;

TEST_CASE("expressions fold constants and identities") {
  const Expr x = Expr::var("x"), y = Expr::var("y");
  CHECK(passes::simplify(Expr(2) * 8 + 0) == Expr(16));
  CHECK(passes::simplify(x * 1 + 0) == x);
  CHECK(passes::simplify(x * 0 + y) == y);
  CHECK(passes::simplify((x + 3) + 4) == x + 7);
  CHECK(passes::simplify(x - x) == Expr(0));
  CHECK(passes::simplify(isa::ceil_div(Expr(7), 2) * x) == Expr(4) * x);
  CHECK(passes::simplify(-(-x)) == x);
  CHECK(passes::simplify(Expr(1) / 0) == Expr(1) / 0);  // kept: the run-time error stays
  CHECK(passes::simplify(Expr(INT64_MAX) + 1) == Expr(INT64_MAX) + 1);
  CHECK(passes::simplify(Expr(1) < 2 && (x < y)) == isa::ne(x < y, 0));
}

TEST_CASE("a program before and after") {
  const auto before = vm::parse(R"(program s(x: ptr<f32>, n: i32) grid(ceil_div(n, 32 * 1)) warps(1) {
  %v = global_view x {shape=[n + 0], strides=[1 * 1]}
  for k in range(0, 2 * 2) {
    let base = blockIdx.x * 32
    let row = base + k * 0
    let unsafe = n / blockIdx.x
    %t = load_global %v[row + 0] : f32[32] @ spatial(32) {masked}
    if 1 < 2 {
      store_global %t, %v[row] {masked}
    } else {
      store_global %t, %v[0] {masked}
    }
  }
}
)");
  const auto after = passes::simplify(before);
  CHECK(vm::print(after) == R"(program s(x: ptr<f32>, n: i32) grid(ceil_div(n, 32)) warps(1) {
  %v = global_view x {shape=[n], strides=[1]}
  let base = blockIdx.x * 32
  let row = base
  for k in range(0, 4) {
    let unsafe = n / blockIdx.x
    %t = load_global %v[row] : f32[32] @ spatial(32) {masked}
    store_global %t, %v[row] {masked}
  }
}
)");
}

TEST_CASE("simplified example programs compute the same results") {
  for (const auto& [p, scalars] : std::vector<std::pair<vm::Program, std::map<std::string, std::int64_t>>>{
           {programs::vector_add(), {{"n", 700}}}, {programs::tiled_matmul(), {{"M", 33}, {"N", 24}, {"K", 40}}}}) {
    const auto q = passes::simplify(p);
    auto a = vm::random_buffers(p, scalars, 3), b = a;
    vm::interpret(p, vm::as_arguments(a, scalars));
    vm::interpret(q, vm::as_arguments(b, scalars));
    CHECK(a == b);
  }
}
