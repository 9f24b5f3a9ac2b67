// Hostile input: every case is a clear anybit::Error naming the problem (and where), never a crash, a
// hang, a stack overflow or an allocation of the size the input asks for.
#include <doctest/doctest.h>

#include <string>

#include "isa/dtype.h"
#include "isa/error.h"
#include "layout/register_layout.h"
#include "passes/pipeline.h"
#include "vm/host_buffers.h"
#include "vm/interpreter.h"
#include "vm/program.h"
#include "vm/verifier.h"

using namespace anybit;

namespace {

std::string program_with(const std::string& body, const std::string& params = "", const std::string& grid = "1") {
  return "program p(" + params + ") grid(" + grid + ") warps(1) {\n" + body + "}\n";
}

}  // namespace

TEST_CASE("NUL bytes and invalid UTF-8 are reported with their bytes escaped, at their line and column") {
  const std::string nul = program_with(std::string("  let x = 1\0 + 2\n", 17));
  CHECK_THROWS_WITH_AS(vm::parse(nul, "nul.vm"), doctest::Contains("nul.vm:2:12: expected the end of the line, found '\\x00'"), Error);
  CHECK_THROWS_WITH_AS(vm::parse("program p\xff\xfe() grid(1) warps(1) {\n}\n", "utf.vm"),
                       doctest::Contains("utf.vm:1:10: expected '(', found '\\xff\\xfe()'"), Error);
  CHECK_THROWS_WITH_AS(isa::parse_dtype(std::string("int\0" "4", 5)), doctest::Contains("unknown data type 'int\\x004'"), Error);
  CHECK_THROWS_WITH_AS(layout::parse_layout("local(2)\xc3\x28"), doctest::Contains("found '\\xc3('"), Error);
  CHECK(printable(std::string(200, 'a'), 10) == "aaaaaaaaaa... (200 bytes)");
}

TEST_CASE("deep nesting in layouts is an error, not a stack overflow") {
  const std::string deep = std::string(20000, '(') + "local(2)" + std::string(20000, ')');  // under the size limit
  CHECK_THROWS_WITH_AS(layout::parse_layout(deep), doctest::Contains("at most 64 nested parentheses"), Error);
  // 64 levels are fine.
  CHECK(layout::parse_layout(std::string(64, '(') + "local(2)" + std::string(64, ')')) == layout::local({2}));
}

TEST_CASE("oversized inputs are refused up front") {
  const std::string huge(100u << 20, ' ');  // 100 MB
  CHECK_THROWS_WITH_AS(vm::parse(huge, "huge.vm"), doctest::Contains("huge.vm: 104857600 bytes is more than the 16 MiB"), Error);
  CHECK_THROWS_WITH_AS(layout::parse_layout(std::string(1 << 20, ' ')), doctest::Contains("more than the 64 KiB"), Error);
  CHECK_THROWS_WITH_AS(isa::parse_dtype(std::string(1 << 20, 'f')), doctest::Contains("... (1048576 bytes)"), Error);
}

TEST_CASE("huge and overflowing shapes, strides, grids and tiles") {
  // A literal beyond 64 bits.
  CHECK_THROWS_WITH_AS(vm::parse(program_with("", "", "99999999999999999999"), "big.vm"),
                       doctest::Contains("big.vm:1:18: integer literal out of range"), Error);
  // A view of 2^64 elements: the interpreter sizes buffers from views and must not wrap around.
  const auto view = vm::parse(program_with("  %v = global_view a {shape=[4611686018427387904, 4], strides=[4, 1]}\n", "a: ptr<f32>"));
  CHECK_THROWS_WITH_AS(vm::random_buffers(view, {}, 1), doctest::Contains("view %v is too large"), Error);
  // Registers and shared memory far over any budget.
  const auto regs = vm::parse(program_with("  %r = alloc_register : f32[1048576, 1048576]\n"));
  CHECK_THROWS_WITH_AS(passes::run_pipeline(regs), doctest::Contains("over the 8160 bits of a thread's 255 registers"), Error);
  const auto shared = vm::parse(program_with("  %s = alloc_shared : shared f32[1048576, 1048576] @ row_major(1048576, 1048576)\n"));
  CHECK_THROWS_WITH_AS(vm::verify(shared), doctest::Contains("needs 4398046511104 bytes of shared memory, over the limit"), Error);
  // Grid arithmetic that overflows 64 bits when evaluated.
  const auto grid = vm::parse(program_with("", "n: i32", "n * n * n * n * n * n * n"));
  CHECK_THROWS_WITH_AS(vm::grid_size(grid, {{"n", 100000}}), doctest::Contains("integer overflow evaluating"), Error);
  // Index arithmetic: an offset expression that overflows at run time on the interpreter.
  const auto index = vm::parse(program_with(
      "  %v = global_view a {shape=[n], strides=[1]}\n"
      "  %t = load_global %v[n * n * n * n * n] : f32[32] @ spatial(32) {masked}\n",
      "a: ptr<f32>, n: i32"));
  vm::HostBuffers buffers = {{"a", std::vector<std::uint8_t>(400)}};
  CHECK_THROWS_WITH_AS(vm::interpret(index, vm::as_arguments(buffers, {{"n", 100000}})), doctest::Contains("integer overflow"), Error);
}
