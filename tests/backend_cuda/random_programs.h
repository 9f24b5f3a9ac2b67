// Seeded random VM programs for differential testing (interpreter vs simulator): loads and stores with
// masks and odd offsets, copy_async pipelines through shared memory, casts between formats, elementwise
// arithmetic, views between bytes and codes, reductions and tensor-core dots.
#pragma once

#include <random>
#include <string>

#include <fmt/format.h>

namespace anybit::testing {

struct RandomProgram {
  std::string text;
  bool exact = true;  // false when a dot reorders sums
};

inline RandomProgram random_program(std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto pick = [&](auto... options) {
    const std::string all[] = {options...};
    return all[rng() % sizeof...(options)];
  };
  auto chance = [&](int percent) { return static_cast<int>(rng() % 100) < percent; };
  RandomProgram out;
  const int warps = chance(50) ? 1 : 2, threads = warps * 32;
  std::string body;
  auto line = [&](const std::string& s) { body += "  " + s + "\n"; };
  if (chance(25)) {
    // A warp-level mma on f16 or bf16 tiles, accumulated over a K loop.
    const std::string t = pick("f16", "bf16", "int8", "uint8");
    const bool integer = t == "int8" || t == "uint8";
    const int step = integer ? 32 : 16;
    const int k = step * (1 + static_cast<int>(rng() % 3));
    const std::string acc = integer ? "int32" : "f32";
    out.exact = integer;  // integer products and sums are exact in any order
    std::string head = fmt::format("program random_dot(a: ptr<{0}>, b: ptr<{0}>, c: ptr<{2}>) grid(1) warps({1}) {{\n", t, warps, acc);
    line(fmt::format("%ga = global_view a {{shape=[16, {0}], strides=[{0}, 1]}}", k));
    line(fmt::format("%gb = global_view b {{shape=[{0}, {1}], strides=[{1}, 1]}}", k, 8 * warps));
    line(fmt::format("%gc = global_view c {{shape=[16, {0}], strides=[{0}, 1]}}", 8 * warps));
    line(fmt::format("%acc = alloc_register : {}[16,{}] {{init={}}}", acc, 8 * warps, integer ? "3" : "0.5"));
    line(fmt::format("for k in range(0, {}) {{", k / step));
    line(fmt::format("  %fa = load_global %ga[0, k * {}] : {}[16,{}]", step, t, step));
    line(fmt::format("  %fb = load_global %gb[k * {}, 0] : {}[{},{}]", step, t, step, 8 * warps));
    line("  dot %acc, %fa, %fb");
    line("}");
    line("store_global %acc, %gc[0, 0]");
    out.text = head + body + "}\n";
    return out;
  }
  const std::string in = pick("f32", "f16", "bf16", "int8", "uint8", "int4", "int3", "uint2", "f4e2m1", "f6e3m2", "f8e4m3", "f8e5m2");
  const std::string mid = pick("f32", "f16", "bf16", "int8", "int32", "f6e2m3", "uint4");
  const int rows = 1 << (rng() % 3), cols = threads * (1 << (rng() % 3)) / rows;
  std::string head = fmt::format("program random_{}(x: ptr<{}>, y: ptr<{}>, o: ptr<{}>, n: i32) grid(2) warps({}) {{\n", seed,
                                 in, in, mid, warps);
  line(fmt::format("%vx = global_view x {{shape=[2 * {0}, {1}], strides=[{1}, 1]}}", rows, cols));
  line(fmt::format("%vy = global_view y {{shape=[n], strides=[1]}}"));
  line(fmt::format("%vo = global_view o {{shape=[2 * {0}, {1}], strides=[{1}, 1]}}", rows, cols));
  const std::string shape = fmt::format("{}[{},{}]", in, rows, cols);
  if (chance(40)) {
    // Through shared memory with cp.async, then loaded back with the default layout.
    line(fmt::format("%s = alloc_shared : shared {} @ row_major({},{})", shape, rows, cols));
    // Inside the view either way: unmasked copies carry no bounds tests, masked ones do.
    line(fmt::format("copy_async %s[0, 0], %vx[blockIdx.x * {}, 0] {{shape=[{}, {}]{}}}", rows, rows, cols,
                     chance(50) ? ", masked" : ""));
    line("commit_group");
    line("wait_group {n=0}");
    line("sync_threads");
    line(fmt::format("%x = load_shared %s[0, 0] : {}", shape));
  } else {
    line(fmt::format("%x = load_global %vx[blockIdx.x * {}, 0] : {} {{masked}}", rows, shape));
  }
  line(fmt::format("%flat = load_global %vy[blockIdx.x * {} + 1] : {}[{}] {{masked}}", rows * cols, in, rows * cols));
  line(fmt::format("%y = reshape %flat {{shape=[{}, {}]}}", rows, cols));
  std::string x = "%x";
  const int in_bits = in == "f32" ? 32 : (in == "f16" || in == "bf16") ? 16 : (in.find('8') != std::string::npos) ? 8 : 0;
  if (in_bits == 8 && chance(50)) {  // reinterpret the same bits as another 8-bit type
    line(fmt::format("%xv = view %x : int8[{},{}]", rows, cols));
    x = "%xv";
  }
  line(fmt::format("%xm = cast {} {{dtype={}}}", x, mid));
  line(fmt::format("%ym = cast %y {{dtype={}}}", mid));
  const std::string op = pick("add", "sub", "mul", "min", "max");
  line(fmt::format("%r = {} %xm, %ym", op));
  std::string result = "%r";
  if (chance(40)) {
    line("%f = fma %r, %xm, %ym");
    result = "%f";
  }
  if (chance(30) && mid != "uint4") {
    line(fmt::format("%neg = neg {}", result));
    result = "%neg";
  }
  line(fmt::format("store_global {}, %vo[blockIdx.x * {}, 0] {{masked}}", result, rows));
  if (chance(50)) {  // max is exact in any order
    line(fmt::format("%red = reduce {} {{dims=[{}], op=max}}", result, chance(50) ? 1 : 0));
    line(fmt::format("%rf = cast %red {{dtype=f32}}"));
    line(fmt::format("%vp = global_view p {{shape=[2 * {}, {}], strides=[{}, 1]}}", rows, cols, cols));
    line(fmt::format("store_global %rf, %vp[blockIdx.x * {}, 0]", rows));
    head.replace(head.find("n: i32)"), 7, "p: ptr<f32>, n: i32)");
  }
  out.text = head + body + "}\n";
  return out;
}

}  // namespace anybit::testing
