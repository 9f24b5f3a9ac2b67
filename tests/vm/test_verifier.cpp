// Verifier: one invalid program per rule, each checked for its specific message.
#include <doctest/doctest.h>

#include "isa/error.h"
#include "vm/verifier.h"

using namespace anybit;

namespace {

// A program with a fixed header around `body`.
std::string program(const std::string& body, int warps = 1) {
  return fmt::format("program t(p: ptr<f32>, h: ptr<f16>, q: ptr<uint8>, n: i32) grid(ceil_div(n, 32)) warps({}) {{\n{}}}\n",
                     warps, body);
}

std::string errors_of(const std::string& text, vm::VerifyOptions options = {}) {
  const vm::Program p = vm::parse(text, "t.vm");
  CHECK(vm::parse(vm::print(p)) == p);  // every test program round-trips, valid or not
  const auto errors = vm::verify_errors(p, options);
  return fmt::format("{}", fmt::join(errors, "\n"));
}

const char* kView = "  %g = global_view p {shape=[n], strides=[1]}\n";
const char* kHalf = "  %gh = global_view h {shape=[n, 64], strides=[64, 1]}\n";
const char* kX = "  %x = load_global %g[0] : f32[32] @ spatial(32)\n";
const char* kMmaA = "column_local(2,2) * spatial(8,4) * local(1,2)";
const char* kMmaB = "local(2,1) * column_spatial(4,8) * local(2,1)";
const char* kMmaC = "local(2,1) * spatial(8,4) * local(1,2)";

}  // namespace

TEST_CASE("a valid program has no errors and verify() returns its types and shared plan") {
  const std::string text = program(std::string(kView) + kX + "  %s = alloc_shared : shared f32[32] @ row_major(32)\n" +
                                   "  %t = alloc_shared : shared f16[100] @ row_major(100)\n" +
                                   "  store_shared %x, %s[0]\n  store_global %x, %g[0]\n");
  CHECK(errors_of(text) == "");
  const auto typing = vm::verify(vm::parse(text));
  CHECK(typing.values.at("x").layout->num_threads() == 32);
  CHECK(typing.shared.offsets.at("s") == 0);
  CHECK(typing.shared.offsets.at("t") == 128);  // 128-byte aligned after 128 bytes of %s
  CHECK(typing.shared.total_bytes == 128 + 200);
}

TEST_CASE("freed shared memory is reused first-fit") {
  const std::string text = program(
      "  %a = alloc_shared : shared f32[64] @ row_major(64)\n  free_shared %a\n"
      "  %b = alloc_shared : shared f32[32] @ row_major(32)\n  %c = alloc_shared : shared f32[32] @ row_major(32)\n");
  const auto typing = vm::verify(vm::parse(text));
  CHECK(typing.shared.offsets.at("b") == 0);
  CHECK(typing.shared.offsets.at("c") == 128);
  CHECK(typing.shared.total_bytes == 256);
}

TEST_CASE("each verifier rule has its own message") {
  const std::string v = kView, x = std::string(kView) + kX, hv = kHalf;
  const std::string acc = fmt::format("  %acc = alloc_register : f32[16,8] @ {}\n", kMmaC);
  const std::string frag_a = fmt::format("  %a = load_global %gh[0, 0] : f16[16,16] @ {}\n", kMmaA);
  const std::string frag_b = fmt::format("  %b = load_global %gh[0, 0] : f16[16,8] @ {}\n", kMmaB);
  const std::string pipe = hv + "  %s = alloc_shared : shared f16[16,64] @ row_major(16,64)\n";
  const std::pair<std::string, std::string> cases[] = {
      {x + "  store_global %y, %g[0]\n", "t.vm:4:3: store_global: %y is not defined"},
      {x + "  %x = load_global %g[0] : f32[32] @ spatial(32)\n", "load_global: %x is already defined"},
      {v + "  %x = load_global %g[m] : f32[32] @ spatial(32)\n", "undefined name 'm' in 'm'"},
      {v + "  %x = load_global %g[p] : f32[32] @ spatial(32)\n", "'p' is a pointer parameter; expressions take integers"},
      {"  %g = global_view n {shape=[n], strides=[1]}\n", "global_view: 'n' is not a pointer parameter"},
      {"  %g = global_view p {shape=[n, n], strides=[1]}\n", "global view has 2 shape entries but 1 strides"},
      {v + "  %x = load_global %g[0] : f16[32] @ spatial(32)\n", "the register tile is f16 but the memory is f32; insert a cast"},
      {v + "  %x = load_global %g[0, 0] : f32[32] @ spatial(32)\n", "offset of g has 2 entries but the tensor has rank 1"},
      {v + "  %x = load_global %g[0] : f32[64] @ spatial(64)\n", "spreads the tile over 64 threads but the block has 32 (1 warps)"},
      {v + "  %x = load_global %g[0] : f32[16] @ spatial(32)\n", "layout spatial(32) has shape [32] but the tile is [16]"},
      {x + "  %h = cast %x {dtype=f16}\n  %y = add %x, %h\n", "add: add operands must have one dtype, got f32 and f16"},
      {x + "  %h = cast %x : f32[32] @ spatial(32) {dtype=f16}\n", "the declared type f32[32] @ spatial(32) must have the dtype attribute's type f16"},
      {x + "  %h = cast %x {dtype=f16, exp=1}\n", "cast: exp=1 needs a source of at most 16 bits (every value is checked), not f32"},
      {x + "  %h = cast %x {dtype=f16}\n  %i = cast %h {dtype=int8, exp=1}\n", "exp=1 needs a floating-point destination, not int8"},
      {x + "  %h = cast %x {dtype=f16}\n  %i = cast %h {dtype=f32, exp=128}\n", "exp=128 is out of range (-126..127)"},
      {x + "  %h = cast %x {dtype=f16}\n  %i = cast %h {dtype=f16, exp=1}\n",
       "exp=1 does not rescale f16 exactly into f16: code 0x7800 (32768) becomes 65536"},
      {x + "  %h = cast %x {dtype=f16}\n  %i = cast %h {dtype=f16, exp=-1}\n",
       "exp=-1 does not rescale f16 exactly into f16: code 0x1 (5.960464477539063e-08) becomes 2.9802322387695312e-08"},
      {x + "  %h = cast %x : f16[16] @ spatial(16) {dtype=f16}\n", "must keep the shape of f16[32] @ spatial(32)"},
      {v + "  %x = load_global %g[0] : f32[32] @ spatial(32) {masked=[1]}\n",
       "load_global: masked=[1] names dimension 1, but the global view has rank 1"},
      {pipe + "  copy_async %s[0, 0], %gh[0, 0] {shape=[16, 64], masked=[1, 0]}\n",
       "copy_async: masked=[1, 0] must list dimensions in ascending order, each once"},
      {pipe + "  copy_async %s[0, 0], %gh[0, 0] {shape=[16, 64], masked=[0, 0]}\n", "must list dimensions in ascending order, each once"},
      {v + "  %y = load_global %g[0] : f32[64] @ spatial(32) * local(2)\n  %h = cast %y : f16[64] @ local(2) * spatial(32) {dtype=f16}\n",
       "f16[64] @ spatial(32) * local(2) cannot become f16[64] @ local(2) * spatial(32) by reordering each thread's slots: "
       "element [32] is in thread 0's slot 1 of the result but not in that thread before"},
      {x + "  %y = load_global %g[0] : f32[64] @ spatial(32) * local(2)\n  %z = add %x, %y\n",
       "add operands must have one shape, got [32] and [64]"},
      {x + "  %y = load_global %g[0] : f32[32] @ column_spatial(32)\n  %u = load_global %g[0] : f32[32] @ "
           "local(2) * spatial(16) * replicated(2)\n  %z = mul %x, %u\n",
       "mul operands must have one layout, got spatial(32) and local(2) * spatial(16) * replicated(2)"},
      {x + "  %y = view %x : int3[32] @ spatial(32)\n", "view needs equal bits per thread: f32[32] @ spatial(32) holds 1 x 32 = 32"},
      {hv + acc + fmt::format("  %a = load_global %gh[0, 0] : f16[16,16] @ spatial(8,4) * local(2,4)\n") + frag_b +
           "  dot %acc, %a, %b\n",
       "dot operand a has layout spatial(8,4) * local(2,4), which is not a warp arrangement of the mma fragment"},
      {hv + frag_a + frag_b + fmt::format("  %acc = alloc_register : int32[16,8] @ {}\n", kMmaC) + "  dot %acc, %a, %b\n",
       "no tensor-core dot for f16 x f16 -> int32"},
      {hv + frag_a + frag_a.substr(0, 3) + "a2" + frag_a.substr(4) + acc + "  dot %acc, %a, %a2\n",
       "dot shapes do not match: c [16,8] += a [16,16] . b [16,16]"},
      {hv + frag_a + frag_b + fmt::format("  %acc = load_global %gh[0, 0] : f16[16,8] @ {}\n", kMmaC) +
           "  %c32 = cast %acc {dtype=f32}\n  dot %c32, %a, %b\n",
       "dot: updates %c32 in place, but only alloc_register tiles are mutable"},
      {x + "  %y = load_global %g[0] : f32[32] @ spatial(32)\n  assign %y, %x\n",
       "assign: updates %y in place, but only alloc_register tiles are mutable"},
      {"  for i in range(0, 2) {\n    %s = alloc_shared : shared f32[8] @ row_major(8)\n  }\n",
       "alloc_shared: shared tiles must be allocated at the top level"},
      {"  %s = alloc_shared : shared f32[50000] @ row_major(50000)\n",
       "needs 200000 bytes of shared memory, over the limit of 166912 bytes"},
      {"  %s = alloc_shared : shared f32[8] @ row_major(8)\n  free_shared %s\n  free_shared %s\n", "%s is freed twice"},
      {x + "  %s = alloc_shared : shared f32[32] @ row_major(32)\n  free_shared %s\n  store_shared %x, %s[0]\n",
       "store_shared: %s is used after free_shared"},
      {"  wait_group {n=0}\n", "wait_group: no copy group was committed before this wait; add commit_group after copy_async"},
      {pipe + "  copy_async %s[0, 0], %gh[0, 0] {shape=[16, 64]}\n",
       "copy_async: this copy is never committed; add commit_group after it"},
      {pipe + "  copy_async %s[0, 0], %gh[0, 0] {shape=[16, 64]}\n  commit_group\n",
       "the program ends with async copy groups pending; add wait_group {n=0}"},
      {pipe + "  copy_async %s[0, 0], %gh[0, 0] {shape=[16, 64]}\n  commit_group\n  %r = load_shared %s[0, 0] : "
              "f16[16,64] @ spatial(16,2) * local(1,32)\n  wait_group {n=0}\n",
       "load_shared: reads %s where a copy_async may still be in flight"},
      {pipe + "  copy_async %s[0, 0], %gh[0, 0] {shape=[16, 64]}\n  commit_group\n  wait_group {n=0}\n  %r = "
              "load_shared %s[0, 0] : f16[16,64] @ spatial(16,2) * local(1,32)\n",
       "reads %s after wait_group but without sync_threads"},
      {v + pipe + "  copy_async %s[0, 0], %g[0] {shape=[16, 64]}\n",
       "copy_async between f16 shared memory and f32 global memory"},
      {pipe + "  copy_async %s[0, 0], %gh[0, 0] {shape=[32, 64]}\n  commit_group\n  wait_group {n=0}\n",
       "copy_async: tile [32,64] does not fit the shared tile [16,64]"},
      {pipe + "  copy_async %s[0, 0], %gh[0, 0] {shape=[16, n]}\n", "shape entries must be positive constants, got 'n'"},
      {x + "  %r = reduce %x {dims=[0], op=mean}\n", "reduce op 'mean' is not one of add, max, min"},
      {x + "  %r = reduce %x {dims=[2], op=add}\n", "reduce dimension 2 out of range for rank 1"},
      {"  %gq = global_view q {shape=[n], strides=[1]}\n  %u = load_global %gq[0] : uint8[32] @ spatial(32)\n  %m = neg %u\n",
       "neg needs a signed type, got uint8"},
      {x + "  %w = where %x, %x, %x\n", "where's condition must be bool, got f32"},
      {x + "  %s = alloc_shared : shared f16[32] @ row_major(32)\n  store_shared %x, %s[0]\n",
       "store_shared: the register tile is f32 but the memory is f16"},
      {x + "  %s = alloc_shared : shared f32[16] @ row_major(16)\n  store_shared %x, %s[0]\n",
       "tile [32] does not fit the shared tile [16]"},
      {"  let n = 3\n", "let: 'n' is already defined; pick another name"},
      {"  for i in range(0, 4, 0) {\n  }\n", "for: loop step 0 must be positive"},
      {"  for i in range(0, 4) {\n    let j = i\n  }\n  let k = j\n", "undefined name 'j' in 'j'"},
      {"  for i in range(0, 4) {\n    %x = alloc_register : f32[32] @ spatial(32)\n  }\n  %y = neg %x\n",
       "neg: %x is not defined here (it is out of scope)"},
      {"  wait_group {n=9}\n", "wait_group n=9 must be in 0..8"},
      {x + "  %r = reshape %x {shape=[5, 7]}\n", "cannot reshape layout spatial(32) of 32 elements to 35 elements"},
      {x + "  %b = cast %x {dtype=bool}\n  %s = add %b, %b\n", "add is not defined on bool"},
      {"  %x = alloc_register : int8[32] @ spatial(32) {init=0.5}\n", "init 0.5 is not an integer, but the tile is int8"},
      {pipe + "  %s3 = alloc_shared : shared f16[1,16,64] @ row_major(1,16,64)\n  copy_async %s3[0, 0, 0], %gh[0, 0] {shape=[1, 16, 64]}\n",
       "copy_async between a rank-3 shared tile and a rank-2 global view; the ranks must match"},
      {"  %x = alloc_register : f32[32,1024] @ spatial(32,1) * local(1,1024)\n",
       "the tile holds 32768 bits per thread (1024 x f32), over the 8160 bits"},
  };
  int index = 0;
  for (const auto& [body, message] : cases) {
    CAPTURE(index);
    ++index;
    CAPTURE(body);
    const std::string errors = errors_of(program(body));
    CAPTURE(errors);
    CHECK(errors.find(message) != std::string::npos);
  }
  CHECK(index >= 40);
}

TEST_CASE("dot checks that the warp arrangements of a, b and c agree") {
  const std::string head = std::string(kHalf) + fmt::format("  %acc = alloc_register : f32[32,16] @ spatial(2,2) * {}\n", kMmaC);
  const std::string good = head + fmt::format("  %a = load_global %gh[0, 0] : f16[32,16] @ spatial(2,1) * replicated(2) * {}\n", kMmaA) +
                           fmt::format("  %b = load_global %gh[0, 0] : f16[16,16] @ replicated(2) * spatial(1,2) * {}\n", kMmaB) +
                           "  dot %acc, %a, %b\n";
  CHECK(errors_of(program(good, 4)) == "");
  // a's warps along rows but not replicated: warps 1 and 3 (second warp column) lack their A rows.
  const std::string bad_a = head + fmt::format("  %a = load_global %gh[0, 0] : f16[32,32] @ spatial(2,2) * {}\n", kMmaA) +
                            fmt::format("  %b = load_global %gh[0, 0] : f16[32,16] @ replicated(2) * spatial(1,2) * local(2,1) * {}\n", kMmaB) +
                            "  dot %acc, %a, %b\n";
  const std::string errors = errors_of(program(bad_a, 4));
  CAPTURE(errors);
  CHECK(errors.find("does not hold A fragment") != std::string::npos);
  // b replicated the wrong way.
  const std::string bad_b = head + fmt::format("  %a = load_global %gh[0, 0] : f16[32,16] @ spatial(2,1) * replicated(2) * {}\n", kMmaA) +
                            fmt::format("  %b = load_global %gh[0, 0] : f16[16,16] @ spatial(1,2) * replicated(2) * {}\n", kMmaB) +
                            "  dot %acc, %a, %b\n";
  CHECK(errors_of(program(bad_b, 4)).find("does not hold B fragment (0, 1)") != std::string::npos);
}

TEST_CASE("the grid may only use integer parameters") {
  const std::string text = "program t(n: i32) grid(blockIdx.x) warps(1) {\n}\n";
  CHECK(errors_of(text).find("'blockIdx.x' cannot be used here") != std::string::npos);
}

TEST_CASE("verify() throws one error listing every violation with its location") {
  const std::string text = program("  %y = neg %nope\n  wait_group {n=0}\n");
  try {
    vm::verify(vm::parse(text, "t.vm"));
    FAIL("expected an error");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("invalid program 't':") == 0);
    CHECK(msg.find("t.vm:2:3: neg: %nope is not defined") != std::string::npos);
    CHECK(msg.find("t.vm:3:3: wait_group: no copy group was committed") != std::string::npos);
  }
}

TEST_CASE("the shared-memory limit is an option") {
  const std::string text = program("  %s = alloc_shared : shared f32[1024] @ row_major(1024)\n");
  CHECK(errors_of(text) == "");
  vm::VerifyOptions small;
  small.shared_limit_bytes = 2048;
  CHECK(errors_of(text, small).find("needs 4096 bytes of shared memory, over the limit of 2048 bytes") != std::string::npos);
}
