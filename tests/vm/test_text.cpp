// .vm text: printer and parser round trips, expression printing, parse errors with line:column.
#include <doctest/doctest.h>

#include <fstream>
#include <random>
#include <sstream>

#include "isa/error.h"
#include "programs/examples.h"
#include "vm/verifier.h"

using namespace anybit;
using isa::Expr;

namespace {

std::string read(const std::string& path) {
  std::ifstream f(path);
  REQUIRE_MESSAGE(f, "cannot open " << path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

void check_round_trip(const vm::Program& p) {
  const std::string text = vm::print(p);
  CAPTURE(text);
  const vm::Program back = vm::parse(text);
  CHECK(back == p);
  CHECK(vm::print(back) == text);
}

Expr random_expr(std::mt19937& rng, int depth) {
  if (depth == 0 || rng() % 4 == 0) {
    switch (rng() % 3) {
      case 0: return Expr(static_cast<std::int64_t>(rng() % 100) - 50);
      case 1: return Expr::var(std::string(1, static_cast<char>('a' + rng() % 3)));
      default: return isa::block_idx_x();
    }
  }
  const isa::ExprOp binary[] = {isa::ExprOp::Add, isa::ExprOp::Sub, isa::ExprOp::Mul, isa::ExprOp::Div,
                                isa::ExprOp::Mod, isa::ExprOp::Min, isa::ExprOp::Max, isa::ExprOp::CeilDiv,
                                isa::ExprOp::Lt,  isa::ExprOp::Le,  isa::ExprOp::Gt,  isa::ExprOp::Ge,
                                isa::ExprOp::Eq,  isa::ExprOp::Ne,  isa::ExprOp::And, isa::ExprOp::Or};
  const auto pick = rng() % 18;
  if (pick == 16) {
    Expr a = random_expr(rng, depth - 1);
    if (a.is_constant()) a = a + 1;  // -(constant) prints as a negative literal
    return -a;
  }
  if (pick == 17) return !random_expr(rng, depth - 1);
  return Expr::make(binary[pick], random_expr(rng, depth - 1), random_expr(rng, depth - 1));
}

}  // namespace

TEST_CASE("parse(print(p)) == p for the example programs and every dequant format") {
  check_round_trip(programs::vector_add());
  check_round_trip(programs::tiled_matmul());
  for (isa::DataType t : isa::all_dtypes())
    if (t.bits() <= 8 && !t.is_bool()) check_round_trip(programs::dequant_fragment(t, isa::DataType::bf16()));
}

TEST_CASE("the kitchen-sink program uses every instruction and round-trips") {
  const vm::Program p = vm::parse(read("tests/vm/programs/kitchen_sink.vm"), "kitchen_sink.vm");
  CHECK_NOTHROW(vm::verify(p));
  check_round_trip(p);
  const std::string text = vm::print(p);
  for (const auto& info : isa::instruction_table()) {
    CAPTURE(info.name);
    CHECK((text.find(std::string(info.name) + " ") != std::string::npos ||
           text.find(std::string(info.name) + "\n") != std::string::npos));
  }
}

TEST_CASE("shipped examples are the canonical text of the builder programs") {
  const std::pair<const char*, vm::Program> shipped[] = {
      {"examples/vector_add.vm", programs::vector_add()},
      {"examples/tiled_matmul.vm", programs::tiled_matmul()},
      {"examples/dequant_int3.vm", programs::dequant_fragment(isa::DataType::signed_int(3), isa::DataType::f16())}};
  for (const auto& [path, program] : shipped) {
    CAPTURE(path);
    const std::string text = read(path);
    CHECK(vm::parse(text, path) == program);
    CHECK(vm::print(program) == text);
  }
}

TEST_CASE("expressions print with minimal parentheses and round-trip") {
  const Expr a = Expr::var("a"), b = Expr::var("b"), c = Expr::var("c");
  CHECK(((a + b) * c).to_string() == "(a + b) * c");
  CHECK((a - (b - c)).to_string() == "a - (b - c)");
  CHECK((a - b - c).to_string() == "a - b - c");
  CHECK((a * Expr(-3)).to_string() == "a * -3");
  CHECK(isa::ceil_div(a + 1, 16).to_string() == "ceil_div(a + 1, 16)");
  CHECK(((a < b) && !isa::eq(c, 0)).to_string() == "a < b && !(c == 0)");
  for (int seed = 0; seed < 500; ++seed) {
    CAPTURE(seed);
    std::mt19937 rng(seed);
    const Expr e = random_expr(rng, 5);
    const std::string text = e.to_string();
    CAPTURE(text);
    const vm::Program p = vm::parse("program e() grid(1) warps(1) {\n  let x = " + text + "\n}\n");
    REQUIRE(std::get<vm::Let>(p.body[0].node).value == e);
  }
}

TEST_CASE("expression evaluation: floor division, overflow and division by zero are errors") {
  auto eval = [](const Expr& e) { return isa::evaluate(e, [](const std::string&) { return std::optional<std::int64_t>(); }); };
  CHECK(eval(Expr(-7) / 2) == -4);
  CHECK(eval(Expr(-7) % 2) == 1);
  CHECK(eval(isa::ceil_div(7, 2)) == 4);
  CHECK(eval(isa::ceil_div(-7, 2)) == -3);
  CHECK_THROWS_WITH_AS(eval(Expr(1) / 0), doctest::Contains("division by zero evaluating '1 / 0'"), Error);
  CHECK_THROWS_WITH_AS(eval(Expr(INT64_MAX) + 1), doctest::Contains("integer overflow"), Error);
  CHECK_THROWS_WITH_AS(eval(Expr::var("zz") + 1), doctest::Contains("unknown name 'zz'"), Error);
}

TEST_CASE("parse errors report file:line:column and what was expected") {
  const std::pair<const char*, const char*> cases[] = {
      {"program p() grid(1) warps(1) {\n  %x = lod_global %g[0] : f32[4]\n}\n",
       "t.vm:2:8: expected an instruction (global_view, alloc_shared"},
      {"program p() grid(1) warps(1) {\n  %x = load_global %g[0]\n}\n",
       "t.vm:2:25: expected ': TYPE' (load_global declares its result type)"},
      {"program p(a: ptr<f9>) grid(1) warps(1) {\n}\n", "t.vm:1:18: expected a data type"},
      {"program p() grid(1) warps(1) {\n  %x = alloc_register : f32[16] @ spatial(8) * lcal(2)\n}\n",
       "t.vm:2:35: layout 'spatial(8) * lcal(2)': at column 14: expected local, spatial"},
      {"program p() grid(1) warps(1) {\n  %x = alloc_register : f32[4] @ local(4) {n=3}\n}\n",
       "t.vm:2:44: alloc_register does not take the attribute 'n' (it takes: init)"},
      {"program p() grid(1) warps(1) {\n  wait_group\n}\n", "t.vm:2:3: wait_group needs the attribute 'n'"},
      {"program p() grid(1) warps(1) {\n  wait_group {n=0, exp=2}\n}\n",
       "t.vm:2:20: wait_group does not take the attribute 'exp' (it takes: n)"},
      {"program p() grid(1) warps(1) {\n  sync_threads\n", "t.vm:3:1: expected '}' to close the block"},
      {"program p() grid(1) warps(1) {\n  %y = sync_threads\n}\n", "sync_threads produces no value; remove '%y ='"},
      {"program p() grid(1) warps(1) {\n  load_global %g[0] : f32[4]\n}\n", "load_global produces a value: write '%name ="},
      {"program p() grid(1) warps(0) {\n}\n", "t.vm:1:27: warps(0) must be between 1 and 32"},
      {"program p(n: i32, n: i32) grid(1) warps(1) {\n}\n", "t.vm:1:19: parameter 'n' is declared twice"},
      {"program p() grid(1) warps(1) {\n  let x = (1 + \n}\n", "t.vm:2:16: expected an expression, found the end of the line"},
      {"program p() grid(1) warps(1) {\n  sync_threads sync_threads\n}\n", "t.vm:2:16: expected the end of the line"},
      {"program p() grid(1) warps(1) {\n}\nextra", "t.vm:3:1: expected the end of the file"},
      {"program p() grid(1) warps(1) {\n  let x = 99999999999999999999\n}\n", "t.vm:2:11: integer literal out of range"},
      {"program p() grid(1) warps(1) {\n  %s = alloc_shared : shared f16[8] @ row_major(4)\n}\n",
       "the shared layout's shape [4] differs from the tile's [8]"},
      {"program p() grid(1) warps(1) {\n  for i in range(0, 4) unroll(0) {\n  }\n}\n", "unroll(0) must be between 1 and 1024"},
      {"\x01\xff program", "t.vm:1:1: expected 'program', found '\\x01\\xff'"},
  };
  for (const auto& [text, message] : cases) {
    CAPTURE(text);
    CHECK_THROWS_WITH_AS(vm::parse(text, "t.vm"), doctest::Contains(message), Error);
  }
}

TEST_CASE("deep nesting is an error, not a stack overflow") {
  std::string deep = "program p() grid(1) warps(1) {\n  let x = " + std::string(5000, '(') + "1" + std::string(5000, ')') + "\n}\n";
  CHECK_THROWS_WITH_AS(vm::parse(deep), doctest::Contains("nested deeper than 64"), Error);
  std::string loops = "program p() grid(1) warps(1) {\n";
  for (int i = 0; i < 100; ++i) loops += fmt::format("for i{} in range(0, 1) {{\n", i);
  for (int i = 0; i < 100; ++i) loops += "}\n";
  loops += "}\n";
  CHECK_THROWS_WITH_AS(vm::parse(loops), doctest::Contains("statements nested deeper than 64"), Error);
}

TEST_CASE("a long operator chain is an error, not a stack overflow") {
  // No nesting at all, but a tree as tall as the chain: every later pass recurses over it.
  const auto chain = [](int terms) {
    std::string s = "program p(n: i32) grid(1) warps(1) {\n  let x = n";
    for (int i = 1; i < terms; ++i) s += i % 2 ? " + n" : " * n";
    return s + "\n}\n";
  };
  CHECK_NOTHROW(vm::parse(chain(400)));
  CHECK_THROWS_WITH_AS(vm::parse(chain(3'000'000), "t.vm"), doctest::Contains("t.vm:2:"), Error);
  CHECK_THROWS_WITH_AS(vm::parse(chain(3'000'000)), doctest::Contains("more than 512 operators deep"), Error);
}

TEST_CASE("prefix operators print no deeper than they parse") {
  // 40 negations nest 40 deep; printed as -(-(...)) they had nested 80 deep and no longer parsed.
  for (const std::string& prefix : {std::string(40, '-'), std::string("-!-!-!-!-!-!-!-!-!-!-!-!-!-!-!-!-!-!-!-!-!-!-!-!-!")}) {
    CAPTURE(prefix);
    const std::string text = "program p(n: i32) grid(1) warps(1) {\n  let x = " + prefix + "n * 2 + " + prefix + "3\n}\n";
    const vm::Program once = vm::parse(text);
    const std::string printed = vm::print(once);
    CHECK(printed.find('(', printed.find("let")) == std::string::npos);
    CHECK(vm::print(vm::parse(printed)) == printed);
  }
  const vm::Program p = vm::parse("program p(n: i32) grid(1) warps(1) {\n  let x = -(-n) - -(-5) + !(-n)\n}\n");
  CHECK(vm::print(p).find("let x = - -n - - -5 + !-n") != std::string::npos);
  // A negated constant is not a negative literal: -(0) and -(-(3)) read back as they were written.
  const std::string constants = "program p(n: i32) grid(1) warps(1) {\n  let x = - -(0) - -(3)\n}\n";
  const std::string printed = vm::print(vm::parse(constants));
  CHECK(printed.find("let x = - -(0) - -(3)") != std::string::npos);
  CHECK(vm::print(vm::parse(printed)) == printed);
}
