// The simulator: the emitted CUDA source, compiled for the CPU and run one fiber per thread, against the
// interpreter on the same inputs (sim tier).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <sstream>

#include "backend_cuda/simulator.h"
#include "isa/bitpack.h"
#include "isa/error.h"
#include "layout/mma_layouts.h"
#include "passes/pipeline.h"
#include "programs/examples.h"
#include "programs/quant_matmul.h"
#include "vm/builder.h"
#include "vm/host_buffers.h"

using namespace anybit;
using namespace anybit::layout;
using isa::DataType;

namespace {

// Runs the program on the interpreter and as an emitted kernel; every element of every buffer must have
// the same code, except that any NaN matches any NaN (payloads are not part of the VM's semantics).
void check_same(const vm::Program& p, const std::map<std::string, std::int64_t>& scalars, std::uint64_t seed,
                std::map<std::string, std::int64_t> divisibility = {},
                const std::function<void(vm::HostBuffers&)>& prepare = {}) {
  passes::PipelineOptions options;
  options.emit.divisibility = std::move(divisibility);
  const auto kernel = passes::run_pipeline(p, options).kernel;
  const auto host = backend_cuda::SimKernel::build(p, kernel);
  auto reference = vm::random_buffers(p, scalars, seed);
  if (prepare) prepare(reference);
  auto emitted = reference;
  vm::interpret(p, vm::as_arguments(reference, scalars));
  host.launch(vm::as_arguments(emitted, scalars));
  for (const vm::Param& q : p.params) {
    if (q.kind != vm::ParamKind::Pointer) continue;
    const auto& want = reference.at(q.name);
    const auto& got = emitted.at(q.name);
    const int bits = q.dtype.bits();
    std::size_t mismatches = 0, first = 0;
    for (std::size_t i = 0; i < want.size() * 8 / bits; ++i) {
      const auto a = isa::read_code(want, i, bits), b = isa::read_code(got, i, bits);
      if (a == b || (isa::is_nan_code(q.dtype, a) && isa::is_nan_code(q.dtype, b))) continue;
      if (mismatches++ == 0) first = i;
    }
    CAPTURE(p.name);
    CAPTURE(q.name);
    CAPTURE(first);
    CHECK(mismatches == 0);
  }
}

// Every 1..8-bit format in one kernel: packed codes viewed in the mma A layout, cast to `out`.
vm::Program dequant_all(DataType out) {
  vm::Builder b("dequant_all", 1);
  for (DataType code : isa::all_dtypes()) {
    if (code.bits() > 8 || code.is_bool()) continue;
    const std::string n = code.name();
    auto q = b.pointer("q_" + n, DataType::unsigned_int(8));
    auto o = b.pointer("out_" + n, out);
    auto vq = b.global_view(q, {32, code.bits()}, {code.bits(), 1});
    auto vo = b.global_view(o, {16, 16}, {16, 1});
    auto bytes = b.load_global(vq, {0, 0}, vm::reg(DataType::unsigned_int(8), {32, code.bits()}, spatial({32, 1}) * local({1, code.bits()})));
    auto codes = b.view(bytes, vm::reg(code, {16, 16}, mma_m16n8k16_a()));
    b.store_global(b.cast(codes, out), vo, {0, 0});
  }
  return b.build();
}

// f32 values from random bit patterns (NaN, inf, subnormal, huge) cast to every type.
vm::Program encode_all() {
  vm::Builder b("encode_all", 1);
  auto x = b.pointer("bits", DataType::unsigned_int(32));
  auto vx = b.global_view(x, {256}, {1});
  const auto tile = spatial({32}) * local({8});
  auto raw = b.load_global(vx, {0}, vm::reg(DataType::unsigned_int(32), {256}, tile));
  auto f = b.view(raw, vm::reg(DataType::f32(), {256}, tile));
  for (DataType t : isa::all_dtypes()) {
    auto o = b.pointer("out_" + t.name(), t);
    b.store_global(b.cast(f, t), b.global_view(o, {256}, {1}), {0});
  }
  return b.build();
}

}  // namespace

TEST_CASE("vector_add: emitted kernel == interpreter, scalar and vector paths") {
  check_same(programs::vector_add(), {{"n", 1}}, 1);
  check_same(programs::vector_add(), {{"n", 1000}}, 2);
  check_same(programs::vector_add(), {{"n", 1000}}, 3, {{"n", 8}});
}

TEST_CASE("dequant of packed codes: every code of every format to f16, bf16 and f32, bit-exact") {
  // Each format's 256 slots hold the codes 0, 1, 2, ... in stream order, so every code of every width
  // up to 8 bits goes through the emitter at least once.
  auto every_code = [](vm::HostBuffers& buffers) {
    for (DataType code : isa::all_dtypes()) {
      if (code.bits() > 8 || code.is_bool()) continue;
      auto& q = buffers.at("q_" + code.name());
      for (std::size_t i = 0; i < 256; ++i) isa::write_code(q, i, code.bits(), static_cast<std::uint32_t>(i) & code.code_mask());
    }
  };
  for (DataType out : {DataType::f16(), DataType::bf16(), DataType::f32()}) {
    CAPTURE(out.name());
    check_same(dequant_all(out), {}, 4, {}, every_code);
  }
  // Small floats reach f32 by pairs: decoded as bf16x2, each half then widened.
  const auto f32 = passes::run_pipeline(dequant_all(DataType::f32())).kernel;
  CHECK(f32.source.find("const ab::u32 p = ") != std::string::npos);
  CHECK(f32.source.find("= p & 0xffff0000u; }") != std::string::npos);
}

namespace {

// Packed codes of every format viewed in `packed` order (slots reordered from the mma B order of a
// [64,16] weight tile: 32 slots a lane), cast to `out` in that mma order.
vm::Program dequant_reordered(DataType out, bool half_split) {
  vm::Builder b(half_split ? "dequant_half_split" : "dequant_reversed", 1);
  const RegisterLayout fragment = local({4, 1}) * local({1, 2}) * mma_m16n8k16_b();
  for (DataType code : isa::all_dtypes()) {
    if (code.bits() > 8 || code.is_bool()) continue;
    RegisterLayout packed = programs::half_split_layout(fragment, code.bits());
    if (!half_split) {  // every lane's slots in reverse order
      std::vector<int> locals(fragment.local().rbegin(), fragment.local().rend());
      packed = RegisterLayout(fragment.rank(), fragment.modes(), fragment.dim_modes(), fragment.spatial(), locals);
    }
    const int bytes = 4 * code.bits();  // 32 codes a lane
    auto q = b.pointer("q_" + code.name(), DataType::unsigned_int(8));
    auto o = b.pointer("out_" + code.name(), out);
    auto vq = b.global_view(q, {32, bytes}, {bytes, 1});
    auto vo = b.global_view(o, {64, 16}, {16, 1});
    auto raw = b.load_global(vq, {0, 0}, vm::reg(DataType::unsigned_int(8), {32, bytes}, spatial({32, 1}) * local({1, bytes})));
    auto codes = b.view(raw, vm::reg(code, {64, 16}, packed));
    b.store_global(b.cast(codes, vm::reg(out, {64, 16}, fragment)), vo, {0, 0});
  }
  return b.build();
}

}  // namespace

TEST_CASE("casts with a declared slot order: half-split pairs and reversed slots, every format, bit-exact") {
  auto every_code = [](vm::HostBuffers& buffers) {
    for (DataType code : isa::all_dtypes()) {
      if (code.bits() > 8 || code.is_bool()) continue;
      auto& q = buffers.at("q_" + code.name());
      for (std::size_t i = 0; i < 1024; ++i) isa::write_code(q, i, code.bits(), static_cast<std::uint32_t>(i * 7 + i / 256) & code.code_mask());
    }
  };
  for (bool half_split : {true, false})
    for (DataType out : {DataType::f16(), DataType::bf16(), DataType::f32()}) {
      CAPTURE(half_split);
      CAPTURE(out.name());
      check_same(dequant_reordered(out, half_split), {}, 15, {}, every_code);
    }
  // The half-split order is what makes 1, 2 and 4-bit integer pairs two instructions.
  const auto kernel = passes::run_pipeline(dequant_reordered(DataType::f16(), true)).kernel;
  CHECK(kernel.source.find("ab::hfma2(ab::lop3<0x6a>(t_") != std::string::npos);
  // 4-bit float pairs (f4e2m1, f4e1m2; f4e3m0's fields overlap its own code) from a word masked to every
  // other pair: two shifted copies joined by one lop3 (a | b) & (sign | fields).
  CHECK(kernel.source.find("ab::lop3<0xa8>((g0 << 12), (g0 << 9), 0x8e008e00u)") != std::string::npos);
  CHECK(kernel.source.find("ab::lop3<0xa8>((g0 << 12), (g0 << 8), 0x87008700u)") != std::string::npos);
}

namespace {

// Every small float (and f16) cast with each exponent in `exps` that rescales it exactly into `out` (a
// missing exponent: the one that leaves f16's bias out of the decode, bias - 15), in the half-split mma
// order the matmul decodes (a declared layout) and in the packed order itself.
vm::Program dequant_scaled(DataType out, const std::vector<std::optional<int>>& exps, std::optional<DataType> only = std::nullopt) {
  vm::Builder b("dequant_scaled", 1);
  const RegisterLayout fragment = local({4, 1}) * local({1, 2}) * mma_m16n8k16_b();
  for (DataType code : isa::all_dtypes()) {
    if (!code.is_float() || code.bits() > 16 || (only && !(code == *only))) continue;
    const RegisterLayout packed = programs::half_split_layout(fragment, std::min(code.bits(), 8));
    const int bytes = 4 * code.bits();  // 32 codes a lane
    auto q = b.pointer("q_" + code.name(), DataType::unsigned_int(8));
    auto vq = b.global_view(q, {32, bytes}, {bytes, 1});
    auto raw = b.load_global(vq, {0, 0}, vm::reg(DataType::unsigned_int(8), {32, bytes}, spatial({32, 1}) * local({1, bytes})));
    auto codes = b.view(raw, vm::reg(code, {64, 16}, code.bits() <= 8 ? packed : fragment));
    for (std::optional<int> k : exps) {
      const int e = k.value_or(code.exponent_bias() - 15);
      if (e == 0 || !isa::check_exact_rescale(code, out, e).empty()) continue;
      for (bool declared : {true, false}) {
        if (declared && k) continue;  // the matmul's declared order with its own exponent; the rest plain
        auto o = b.pointer(fmt::format("out_{}_{}{}", code.name(), e < 0 ? "m" : "p", std::abs(e)) + (declared ? "_mma" : ""), out);
        auto vo = b.global_view(o, {64, 16}, {16, 1});
        b.store_global(declared ? b.cast_scaled(codes, vm::reg(out, {64, 16}, fragment), e) : b.cast_scaled(codes, out, e), vo, {0, 0});
      }
    }
  }
  return b.build();
}

}  // namespace

TEST_CASE("casts marked finite: every finite code of f8e4m3 and f8e5m2, bit-exact, without the NaN and inf patches") {
  for (const char* name : {"f8e4m3", "f8e5m2"})
    for (DataType out : {DataType::f16(), DataType::bf16()}) {
      const DataType code = isa::parse_dtype(name);
      CAPTURE(name);
      CAPTURE(out.name());
      vm::Builder b("dequant_finite", 1);
      const RegisterLayout fragment = local({4, 1}) * local({1, 2}) * mma_m16n8k16_b();
      auto q = b.pointer("q", DataType::unsigned_int(8));
      auto vq = b.global_view(q, {32, 32}, {32, 1});
      auto raw = b.load_global(vq, {0, 0}, vm::reg(DataType::unsigned_int(8), {32, 32}, spatial({32, 1}) * local({1, 32})));
      auto codes = b.view(raw, vm::reg(code, {64, 16}, programs::half_split_layout(fragment, 8)));
      auto o = b.pointer("out", out);
      b.store_global(b.cast_finite(codes, vm::reg(out, {64, 16}, fragment)), b.global_view(o, {64, 16}, {16, 1}), {0, 0});
      const vm::Program p = b.build();
      // Every finite code, in turn, at every position (1024 slots, 254 or 248 finite codes).
      std::vector<std::uint32_t> finite;
      for (std::uint32_t c = 0; c < 256; ++c)
        if (std::isfinite(isa::decode(code, c))) finite.push_back(c);
      check_same(p, {}, 23, {}, [&](vm::HostBuffers& buffers) {
        for (std::size_t i = 0; i < 1024; ++i) isa::write_code(buffers.at("q"), i, 8, finite[(i * 7 + i / 256) % finite.size()]);
      });
      const auto source = passes::run_pipeline(p).kernel.source;
      CHECK(source.find("nan_where_all_ones") == std::string::npos);
      CHECK(source.find("replace_halves") == std::string::npos);
      CHECK(source.find("t + 0x") == std::string::npos);  // f8e4m3 to f16: no NaN by carry
    }
}

TEST_CASE("casts with exp=k: every code of every small float (and f16) times 2^k, bit-exact") {
  auto every_code = [](vm::HostBuffers& buffers) {
    for (DataType code : isa::all_dtypes()) {
      if (!code.is_float() || code.bits() > 16) continue;
      auto& q = buffers.at("q_" + code.name());
      for (std::size_t i = 0; i < 1024; ++i)
        isa::write_code(q, i, code.bits(), static_cast<std::uint32_t>(i * 7 + i / 256) & code.code_mask());
    }
  };
  const std::vector<std::optional<int>> exps = {std::nullopt, -1, 3};
  for (DataType out : {DataType::f16(), DataType::bf16(), DataType::f32()}) {
    CAPTURE(out.name());
    const auto p = dequant_scaled(out, exps);
    CHECK(p.params.size() > 40);
    check_same(p, {}, 21, {}, every_code);
  }
  // f8e4m3 to f16 at 2^-8 needs no multiply: the moved fields are the value times 2^-8 already.
  const auto plain = passes::run_pipeline(dequant_scaled(DataType::f16(), {1}, isa::parse_dtype("f8e4m3"))).kernel;
  const auto folded = passes::run_pipeline(dequant_scaled(DataType::f16(), {-8}, isa::parse_dtype("f8e4m3"))).kernel;
  CHECK(plain.source.find("ab::hmul2(") != std::string::npos);
  CHECK(folded.source.find("ab::hmul2(") == std::string::npos);
}

TEST_CASE("casts from f32 to every type encode like the host (NaN, inf, subnormals, saturation)") {
  for (std::uint64_t seed : {5, 6, 7}) check_same(encode_all(), {}, seed);
}

TEST_CASE("elementwise arithmetic rounds like the interpreter for f32, f16, bf16 and integers") {
  const std::string ops = R"(
  %a = load_global %va[0] : T[256] @ spatial(32) * local(8)
  %b = load_global %vb[0] : T[256] @ spatial(32) * local(8)
  %c = load_global %vc[0] : T[256] @ spatial(32) * local(8)
  %add = add %a, %b
  %sub = sub %add, %c
  %mul = mul %sub, %b
  %lo = min %mul, %a
  %hi = max %lo, %c
  %f = fma %hi, %b, %c
  %n = neg %f
  %abs = abs %n
  %z = cast %abs {dtype=bool}
  %w = where %z, %abs, %a
  store_global %w, %vo[0]
}
)";
  for (const char* t : {"f32", "f16", "bf16", "int8", "int3", "int32"}) {
    CAPTURE(t);
    std::string body = std::string("program arith(a: ptr<T>, b: ptr<T>, c: ptr<T>, o: ptr<T>) grid(1) warps(1) {\n") +
                       "  %va = global_view a {shape=[256], strides=[1]}\n  %vb = global_view b {shape=[256], strides=[1]}\n"
                       "  %vc = global_view c {shape=[256], strides=[1]}\n  %vo = global_view o {shape=[256], strides=[1]}\n" + ops;
    for (std::size_t at; (at = body.find('T')) != std::string::npos && body[at - 1] != '%';)
      body.replace(at, 1, t);
    check_same(vm::parse(body, "arith.vm"), {}, 8);
  }
  const std::string fdiv = R"(program d(a: ptr<f16>, b: ptr<f16>, o: ptr<f16>) grid(1) warps(1) {
  %va = global_view a {shape=[256], strides=[1]}
  %vb = global_view b {shape=[256], strides=[1]}
  %vo = global_view o {shape=[256], strides=[1]}
  %x = load_global %va[0] : f16[256] @ spatial(32) * local(8)
  %y = load_global %vb[0] : f16[256] @ spatial(32) * local(8)
  %q = div %x, %y
  store_global %q, %vo[0]
}
)";
  check_same(vm::parse(fdiv), {}, 9);
}

TEST_CASE("sub-byte global tiles at unaligned offsets, masked, through bit loads and atomic bit stores") {
  const std::string text = R"(program bits(x: ptr<int3>, o: ptr<int3>, n: i32) grid(2) warps(1) {
  %v = global_view x {shape=[n], strides=[1]}
  %w = global_view o {shape=[n], strides=[1]}
  %t = load_global %v[blockIdx.x * 96 + 1] : int3[96] @ spatial(32) * local(3) {masked}
  %u = neg %t
  store_global %u, %w[blockIdx.x * 96 + 1] {masked}
}
)";
  check_same(vm::parse(text), {{"n", 150}}, 10);
  check_same(vm::parse(text), {{"n", 200}}, 11);
}

TEST_CASE("masked=[D] tests only the named dimensions: a rows-only copy and load match the interpreter") {
  const std::string text = R"(program m(x: ptr<f16>, out: ptr<f16>, r: i32) grid(1) warps(1) {
  %v = global_view x {shape=[r, 64], strides=[64, 1]}
  %o = global_view out {shape=[8, 64], strides=[64, 1]}
  %s = alloc_shared : shared f16[8,64] @ row_major(8,64)
  copy_async %s[0, 0], %v[0, 0] {shape=[8, 64], masked=[0]}
  commit_group
  wait_group {n=0}
  sync_threads
  %t = load_shared %s[0, 0] : f16[8,64] @ spatial(8,4) * local(1,16)
  %u = load_global %v[0, 0] : f16[8,64] @ spatial(8,4) * local(1,16) {masked=[0]}
  %w = add %t, %u
  store_global %w, %o[0, 0]
}
)";
  const vm::Program p = vm::parse(text);
  const auto source = passes::run_pipeline(p).kernel.source;
  CHECK(source.find("const int valid = rows_in ? 16 : 0;") != std::string::npos);  // no column test
  CHECK(source.find("< t_v_extent1") == std::string::npos);
  for (std::int64_t rows : {3, 8}) check_same(p, {{"r", rows}}, 13);
}

TEST_CASE("copies in rounds into a pipeline stage: one destination a thread, the end tested in the last round") {
  // 70 chunks of 16 bytes for 32 threads: three rounds, the last one partial; the stage is a loop value.
  const std::string text = R"(program stages(x: ptr<uint8>, out: ptr<uint8>) grid(1) warps(1) {
  %v = global_view x {shape=[4, 1120], strides=[1120, 1]}
  %o = global_view out {shape=[4, 1120], strides=[1120, 1]}
  %s = alloc_shared : shared uint8[3,1120] @ row_major(3,1120)
  for i in range(0, 4, 1) {
    copy_async %s[(i + 2) % 3, 0], %v[i, 0] {shape=[1, 1120]}
    commit_group
    wait_group {n=0}
    sync_threads
    %t = load_shared %s[(i + 2) % 3, 0] : uint8[1,1120] @ spatial(1,32) * local(1,35)
    store_global %t, %o[i, 0]
    sync_threads
  }
}
)";
  const vm::Program p = vm::parse(text);
  const auto source = passes::run_pipeline(p).kernel.source;
  CAPTURE(source);
  CHECK(source.find("if (r == 2 && q >= 70) break;") != std::string::npos);
  CHECK(source.find("+ r * 512;") != std::string::npos);  // a round 32 chunks of 16 bytes on
  check_same(p, {}, 14);
}

TEST_CASE("a reduction within each thread's own slots matches the interpreter") {
  const std::string text = R"(program r(x: ptr<f32>, o: ptr<f32>) grid(1) warps(1) {
  %v = global_view x {shape=[32, 8], strides=[8, 1]}
  %w = global_view o {shape=[32, 1], strides=[1, 1]}
  %t = load_global %v[0, 0] : f32[32,8] @ spatial(32,1) * local(1,8)
  %m = reduce %t {dims=[1], op=max}
  store_global %m, %w[0, 0]
}
)";
  check_same(vm::parse(text), {}, 12);
}


namespace {

// Interpreter vs simulator with a tolerance for f32 outputs (mma sums in another order).
void check_close(const vm::Program& p, const std::map<std::string, std::int64_t>& scalars, std::uint64_t seed,
                 std::map<std::string, std::int64_t> divisibility, double tolerance) {
  passes::PipelineOptions options;
  options.emit.divisibility = std::move(divisibility);
  const auto kernel = passes::run_pipeline(p, options).kernel;
  const auto sim = backend_cuda::SimKernel::build(p, kernel);
  auto reference = vm::random_buffers(p, scalars, seed);
  auto simulated = reference;
  vm::interpret(p, vm::as_arguments(reference, scalars));
  const auto counters = sim.launch(vm::as_arguments(simulated, scalars), {seed});
  for (const vm::Param& q : p.params) {
    if (q.kind != vm::ParamKind::Pointer) continue;
    double worst = 0;
    const auto& want = reference.at(q.name);
    const auto& got = simulated.at(q.name);
    for (std::size_t i = 0; i < want.size() * 8 / q.dtype.bits(); ++i)
      worst = std::max(worst, std::fabs(isa::decode(q.dtype, isa::read_code(want, i, q.dtype.bits())) -
                                        isa::decode(q.dtype, isa::read_code(got, i, q.dtype.bits()))));
    CAPTURE(q.name);
    CHECK(worst <= tolerance);
  }
  CHECK(counters.global_read_bytes > 0);
}

backend_cuda::EmittedKernel raw_kernel(const std::string& name, const std::string& body, int threads) {
  return {name, "#include \"anybit_runtime.cuh\"\nextern \"C\" __global__ void " + name + "(ab::u8* out) {\n" + body + "\n}\n",
          threads, 0, {}, {}, {}, {}};
}

}  // namespace

TEST_CASE("the tiled matmul (cp.async, ldmatrix, mma, barriers) matches the interpreter on odd shapes") {
  for (auto [M, N, K] : {std::tuple{45, 40, 72}, {32, 16, 16}, {1, 8, 24}}) {
    CAPTURE(M);
    CAPTURE(N);
    CAPTURE(K);
    check_close(programs::tiled_matmul(), {{"M", M}, {"N", N}, {"K", K}}, 5, {}, 1e-5 * K);
    if (K % 8 == 0 && N % 8 == 0) check_close(programs::tiled_matmul(), {{"M", M}, {"N", N}, {"K", K}}, 6, {{"K", 8}, {"N", 8}}, 1e-5 * K);
  }
}

TEST_CASE("reductions across warps match the interpreter") {
  const auto p = vm::parse(R"(program r(x: ptr<f32>, out: ptr<f32>, o2: ptr<int8>, xi: ptr<int8>) grid(1) warps(4) {
  %v = global_view x {shape=[8, 64], strides=[64, 1]}
  %o = global_view out {shape=[1, 64], strides=[64, 1]}
  %vi = global_view xi {shape=[8, 64], strides=[64, 1]}
  %w = global_view o2 {shape=[1, 64], strides=[64, 1]}
  %a = load_global %v[0, 0] : f32[8,64] @ spatial(4,1) * local(2,1) * spatial(1,32) * local(1,2)
  %s = reduce %a {dims=[0], op=max}
  store_global %s, %o[0, 0]
  %ai = load_global %vi[0, 0] : int8[8,64] @ spatial(4,1) * local(2,1) * spatial(1,32) * local(1,2)
  %si = reduce %ai {dims=[0, 1], op=add}
  %wide = reshape %si {shape=[1, 1]}
  %i8 = load_global %vi[0, 0] : int8[1,64] @ replicated(4) * spatial(1,32) * local(1,2)
  %sum = reduce %i8 {dims=[1], op=min}
  store_global %ai, %vi[0, 0]
}
)");
  check_close(p, {}, 7, {}, 0.0);
}

TEST_CASE("the simulator's checks: out of bounds, misaligned, barrier divergence, split collectives") {
  // A view larger than its buffer: the store past the end is reported with the instruction.
  const auto oob = vm::parse(R"(program oob(x: ptr<f32>) grid(1) warps(1) {
  %v = global_view x {shape=[64], strides=[1]}
  %t = alloc_register : f32[64] @ spatial(32) * local(2) {init=1}
  store_global %t, %v[0]
}
)", "oob.vm");
  const auto k = passes::run_pipeline(oob).kernel;
  const auto sim = backend_cuda::SimKernel::build(oob, k);
  std::vector<std::uint8_t> small(100);
  vm::Arguments args{{{"x", std::span<std::uint8_t>(small)}}, {}};
  CHECK_THROWS_WITH_AS(sim.launch(args), doctest::Contains("oob.vm:4:3: store_global"), Error);
  CHECK_THROWS_WITH_AS(sim.launch(args), doctest::Contains("of buffer 'x' (100 bytes)"),
                       Error);
  // A false divisibility promise makes a 16-byte access misaligned.
  const auto lie = passes::run_pipeline(programs::vector_add(), {{{{"n", 4}}, {}}, {}}).kernel;
  const auto add = backend_cuda::SimKernel::build(programs::vector_add(), lie);
  std::map<std::string, std::int64_t> s = {{"n", 1000}};
  auto b = vm::random_buffers(programs::vector_add(), s, 1);
  std::vector<std::uint8_t> shifted(4004);
  vm::Arguments misaligned = vm::as_arguments(b, s);
  misaligned.buffers["a"] = std::span<std::uint8_t>(shifted).subspan(4);
  CHECK_THROWS_WITH_AS(add.launch(misaligned), doctest::Contains("misaligned 16-byte global access"), Error);
  // The promise itself is checked at every launch: n = 1001 is refused by name before anything runs.
  CHECK(lie.source.find("// accesses assume n % 4 == 0 (every launch checks)") != std::string::npos);
  std::map<std::string, std::int64_t> odd = {{"n", 1001}};
  auto bo = vm::random_buffers(programs::vector_add(), odd, 1);
  CHECK_THROWS_WITH_AS(add.launch(vm::as_arguments(bo, odd)),
                       doctest::Contains("parameter n = 1001 is not a multiple of 4, which it was compiled for"), Error);
  // A kernel compiled under a parameter bound refuses larger arguments before it runs.
  const auto bounded = passes::run_pipeline(programs::vector_add(), {{{}, {{"n", 512}}}, {}}).kernel;
  CHECK(bounded.source.find("index arithmetic assumes n <= 512") != std::string::npos);
  const auto small_add = backend_cuda::SimKernel::build(programs::vector_add(), bounded);
  CHECK_THROWS_WITH_AS(small_add.launch(vm::as_arguments(b, s)),
                       doctest::Contains("parameter n = 1000 exceeds the bound 512 it was compiled for"), Error);
  std::map<std::string, std::int64_t> s512 = {{"n", 512}};
  auto b512 = vm::random_buffers(programs::vector_add(), s512, 2);
  CHECK_NOTHROW(small_add.launch(vm::as_arguments(b512, s512)));
  // Hand-written kernels for what a VM program cannot express.
  const auto diverge = backend_cuda::SimKernel::build(vm::parse("program d(out: ptr<uint8>) grid(1) warps(1) {\n}\n"),
                                                       raw_kernel("d", "if (ab::thread_idx() == 5) return;\nab::bar_sync();", 32));
  std::vector<std::uint8_t> out(4);
  vm::Arguments raw{{{"out", std::span<std::uint8_t>(out)}}, {}};
  CHECK_THROWS_WITH_AS(diverge.launch(raw), doctest::Contains("barrier divergence"), Error);
  const auto split = backend_cuda::SimKernel::build(
      vm::parse("program d(out: ptr<uint8>) grid(1) warps(1) {\n}\n"),
      raw_kernel("d", "if (ab::thread_idx() % 2) ab::shfl_xor(1u, 1); else ab::bar_sync();", 32));
  CHECK_THROWS_WITH_AS(split.launch(raw), doctest::Contains("lanes at different collectives"), Error);
}

TEST_CASE("a missing sync_threads between a shared store and another thread's load is a race") {
  const std::string text = R"(program race(x: ptr<f32>, o: ptr<f32>) grid(1) warps(2) {
  %v = global_view x {shape=[64], strides=[1]}
  %w = global_view o {shape=[64], strides=[1]}
  %s = alloc_shared : shared f32[64] @ row_major(64)
  %t = load_global %v[0] : f32[64] @ spatial(64)
  store_shared %t, %s[0]
SYNC
  %r = load_shared %s[0] : f32[64] @ local(2) * spatial(32) * replicated(2)
  store_global %r, %w[0]
}
)";
  auto program = [&](bool sync) {
    std::string t = text;
    t.replace(t.find("SYNC"), 4, sync ? "  sync_threads" : "");
    return vm::parse(t, "race.vm");
  };
  const auto racy = program(false);
  const auto sim = backend_cuda::SimKernel::build(racy, passes::run_pipeline(racy).kernel);
  auto b = vm::random_buffers(racy, {}, 1);
  CHECK_THROWS_WITH_AS(sim.launch(vm::as_arguments(b, {})), doctest::Contains("race.vm:8:3: load_shared"), Error);
  CHECK_THROWS_WITH_AS(sim.launch(vm::as_arguments(b, {})), doctest::Contains("shared-memory race: reads byte"), Error);
  check_same(program(true), {}, 2);
}

#include "random_programs.h"

TEST_CASE("differential: 200 seeded random programs, interpreter vs simulator") {
  int dots = 0, programs_with_dot = 0;
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    const auto generated = anybit::testing::random_program(seed);
    CAPTURE(seed);
    CAPTURE(generated.text);
    vm::Program p;
    REQUIRE_NOTHROW(p = passes::run_pipeline(vm::parse(generated.text, "random.vm")).program);
    std::map<std::string, std::int64_t> scalars;
    if (p.find_param("n")) scalars["n"] = 2 * 256 - 3;  // ragged tails for the masked loads
    if (generated.text.find("dot %acc") != std::string::npos) ++programs_with_dot;
    if (generated.exact) {
      check_same(p, scalars, seed);
    } else {
      ++dots;
      check_close(p, scalars, seed, {}, 1e-4);
    }
  }
  CHECK(dots > 10);
  CHECK(programs_with_dot > 30);
}

namespace {

// Runs a hand-written kernel of `threads` threads with one byte buffer `io`.
void run_raw(const std::string& name, const std::string& body, int threads, std::vector<std::uint8_t>& io, std::int64_t shared = 0) {
  auto k = raw_kernel(name, "AB_DECLARE_SHARED(ab_smem);\nconst ab::u32 lane = ab::thread_idx();\n" + body, threads);
  k.source.replace(k.source.find("(ab::u8* out)"), 13, "(ab::u8* io)");
  k.shared_bytes = shared;
  const auto program = vm::parse(fmt::format("program {}(io: ptr<uint8>) grid(1) warps({}) {{\n}}\n", name, threads / 32));
  const auto sim = backend_cuda::SimKernel::build(program, k);
  sim.launch(vm::Arguments{{{"io", std::span<std::uint8_t>(io)}}, {}});
}

}  // namespace

TEST_CASE("mma.sync fragments on the simulator, lane by lane from the PTX tables, against a plain product") {
  std::mt19937 rng(11);
  for (const char* type : {"f16", "bf16"}) {
    CAPTURE(type);
    const bool bf = std::string(type) == "bf16";
    const DataType t = bf ? DataType::bf16() : DataType::f16();
    // io bytes: A 16x16 at 0, B 16x8 (k x n) at 512, C 16x8 f32 at 768, D 16x8 f32 at 1280
    std::vector<std::uint8_t> io(16 * 16 * 2 + 16 * 8 * 2 + 2 * 16 * 8 * 4);
    std::vector<double> A(256), B(128), C(128);
    for (int i = 0; i < 256; ++i) isa::write_code(io, i, 16, isa::encode(t, A[i] = isa::decode(t, isa::encode(t, (int(rng() % 17) - 8) / 4.0))));
    for (int i = 0; i < 128; ++i) isa::write_code(io, 256 + i, 16, isa::encode(t, B[i] = isa::decode(t, isa::encode(t, (int(rng() % 17) - 8) / 8.0))));
    for (int i = 0; i < 128; ++i) isa::write_code(io, 768 / 4 + i, 32, isa::encode(DataType::f32(), C[i] = (int(rng() % 9) - 4)));
    const std::string body = fmt::format(R"(
const ab::u32 g = lane / 4, t = lane % 4;
const unsigned short* A = (const unsigned short*)io;
const unsigned short* B = A + 256;
const float* C = (const float*)(io + 768);
float* D = (float*)(io + 768 + 512);
ab::u32 a[4], b[2], c[4], d[4];
for (int i = 0; i < 8; ++i) {{  // A: row g (a0,a1,a4,a5) or g+8, column 2t + (i&1) (+8 for i >= 4)
  const int row = (i == 0 || i == 1 || i == 4 || i == 5) ? g : g + 8, col = 2 * t + (i & 1) + (i >= 4 ? 8 : 0);
  ab::set<16>(a, i, A[row * 16 + col]);
}}
for (int i = 0; i < 4; ++i) ab::set<16>(b, i, B[(2 * t + (i & 1) + (i >= 2 ? 8 : 0)) * 8 + g]);
for (int i = 0; i < 4; ++i) c[i] = ab::as_u32(C[(g + (i >= 2 ? 8 : 0)) * 8 + 2 * t + (i & 1)]);
ab::mma_m16n8k16_f32_{}(d, a, b, c);
for (int i = 0; i < 4; ++i) D[(g + (i >= 2 ? 8 : 0)) * 8 + 2 * t + (i & 1)] = ab::as_float(d[i]);
)", type);
    run_raw("mma_probe", body, 32, io);
    for (int m = 0; m < 16; ++m)
      for (int n = 0; n < 8; ++n) {
        double want = C[m * 8 + n];
        for (int k = 0; k < 16; ++k) want += A[m * 16 + k] * B[k * 8 + n];
        CHECK(isa::decode(DataType::f32(), isa::read_code(io, 1280 / 4 + m * 8 + n, 32)) == want);
      }
  }
}

TEST_CASE("ldmatrix x1, x2, x4 with and without .trans on the simulator match the PTX definition") {
  for (int count : {1, 2, 4})
    for (bool trans : {false, true}) {
      CAPTURE(count);
      CAPTURE(trans);
      // Shared: 4 matrices of 8x8 b16 with value (q << 8) | (r << 4) | c; each lane writes its registers out.
      std::vector<std::uint8_t> io(32 * 4 * 4);
      const std::string body = fmt::format(R"(
unsigned short* s = (unsigned short*)ab_smem;
for (int i = lane; i < 256; i += 32) {{ const int q = i / 64, r = (i / 8) % 8, c = i % 8; ab::u32 v = (q << 8) | (r << 4) | c; ab::st_shared<2>(s + i, &v); }}
ab::bar_sync();
ab::u32 d[4] = {{0, 0, 0, 0}};
ab::ldmatrix<{}, {}>(d, s + (lane / 8 % {}) * 64 + (lane % 8) * 8);
for (int q = 0; q < 4; ++q) ab::st_global<4>(io + (lane * 4 + q) * 4, &d[q]);
)",
                                           count, trans ? "true" : "false", count);
      run_raw("ldmatrix_probe", body, 32, io, 512);
      for (int lane = 0; lane < 32; ++lane)
        for (int q = 0; q < count; ++q) {
          const int r = lane / 4, c = 2 * (lane % 4);
          auto value = [&](int row, int col) { return static_cast<std::uint32_t>((q << 8) | (row << 4) | col); };
          const std::uint32_t lo = trans ? value(c, r) : value(r, c), hi = trans ? value(c + 1, r) : value(r, c + 1);
          CHECK(isa::read_code(io, static_cast<std::size_t>(lane * 4 + q), 32) == (lo | (hi << 16)));
        }
    }
}

TEST_CASE("the kitchen-sink program (every instruction) on the simulator matches the interpreter") {
  std::ifstream f("tests/vm/programs/kitchen_sink.vm");
  std::stringstream s;
  s << f.rdbuf();
  const auto p = passes::run_pipeline(vm::parse(s.str(), "kitchen_sink.vm")).program;
  check_close(p, {{"n", 40}, {"big", 7}}, 13, {}, 1e-2);
}

TEST_CASE("counters: traffic, collectives, and bank conflicts that the swizzle removes") {
  auto program = [](const std::string& smem) {
    return vm::parse(fmt::format(R"(program banks(x: ptr<f16>, o: ptr<f16>) grid(1) warps(1) {{
  %v = global_view x {{shape=[16, 64], strides=[64, 1]}}
  %w = global_view o {{shape=[16, 16], strides=[16, 1]}}
  %s = alloc_shared : shared f16[16,64] @ {}
  %t = load_global %v[0, 0] : f16[16,64] @ spatial(4,8) * local(4,8)
  store_shared %t, %s[0, 0]
  sync_threads
  %a = load_shared %s[0, 0] : f16[16,16] @ column_local(2,2) * spatial(8,4) * local(1,2)
  store_global %a, %w[0, 0]
}}
)",
                                 smem));
  };
  backend_cuda::SimCounters plain, swizzled;
  for (auto [smem, out] : {std::pair{"row_major(16,64)", &plain}, {"swizzle(3,3,3, row_major(16,64))", &swizzled}}) {
    const auto p = program(smem);
    const auto sim = backend_cuda::SimKernel::build(p, passes::run_pipeline(p).kernel);
    auto b = vm::random_buffers(p, {}, 1);
    *out = sim.launch(vm::as_arguments(b, {}));
    auto reference = vm::random_buffers(p, {}, 1);
    vm::interpret(p, vm::as_arguments(reference, {}));
    CHECK(reference == b);
  }
  CHECK(plain.global_read_bytes == 16 * 64 * 2);
  CHECK(plain.global_write_bytes == 16 * 16 * 2);
  CHECK(plain.ldmatrix == 1);
  CHECK(plain.arithmetic_instructions == 0);  // loads and stores only
  // The load is coalesced (every sector once); the store in the fragment layout writes 8 bytes of each
  // 32-byte row per request, so its 16 sectors are requested twice.
  CHECK(plain.global_sectors == 16 * 64 * 2 / 32 + 2 * (16 * 16 * 2 / 32));
  CHECK(plain.memory_instructions > 0);
  CHECK(plain.barriers == 1);
  CHECK(swizzled.shared_wavefronts < plain.shared_wavefronts);  // ldmatrix rows 128 bytes apart conflict
  CHECK(plain.shared_wavefronts > plain.shared_ideal_wavefronts);
}

TEST_CASE("mma.sync m16n8k32 s8 and u8 fragments on the simulator against a plain integer product") {
  std::mt19937 rng(12);
  for (const char* type : {"s8", "u8"}) {
    CAPTURE(type);
    const bool is_signed = std::string(type) == "s8";
    // io bytes: A 16x32 at 0, B 32x8 (k x n) at 512, C 16x8 s32 at 768, D 16x8 s32 at 1280
    std::vector<std::uint8_t> io(1792);
    for (int i = 0; i < 768; ++i) io[i] = static_cast<std::uint8_t>(rng());
    std::vector<std::int32_t> C(128);
    for (int i = 0; i < 128; ++i) {
      C[i] = static_cast<std::int32_t>(rng() % 2001) - 1000;
      std::memcpy(&io[768 + 4 * i], &C[i], 4);
    }
    const std::string body = fmt::format(R"(
const ab::u32 g = lane / 4, t = lane % 4;
const ab::u8* A = io;
const ab::u8* B = io + 512;
const ab::i32* C = (const ab::i32*)(io + 768);
ab::i32* D = (ab::i32*)(io + 1280);
ab::u32 a[4], b[2], c[4], d[4];
for (int i = 0; i < 16; ++i) {{  // A: row g for i in [0,4) u [8,12) else g+8; column 4t + (i&3) (+16 for i >= 8)
  const int row = (i < 4 || (i >= 8 && i < 12)) ? g : g + 8, col = 4 * t + (i & 3) + (i >= 8 ? 16 : 0);
  ab::set<8>(a, i, A[row * 32 + col]);
}}
for (int i = 0; i < 8; ++i) ab::set<8>(b, i, B[(4 * t + (i & 3) + (i >= 4 ? 16 : 0)) * 8 + g]);
for (int i = 0; i < 4; ++i) c[i] = (ab::u32)C[(g + (i >= 2 ? 8 : 0)) * 8 + 2 * t + (i & 1)];
ab::mma_m16n8k32_s32_{}(d, a, b, c);
for (int i = 0; i < 4; ++i) D[(g + (i >= 2 ? 8 : 0)) * 8 + 2 * t + (i & 1)] = (ab::i32)d[i];
)", type);
    run_raw("mma_int_probe", body, 32, io);
    auto value = [&](std::uint8_t v) { return is_signed ? static_cast<std::int64_t>(static_cast<std::int8_t>(v)) : static_cast<std::int64_t>(v); };
    for (int m = 0; m < 16; ++m)
      for (int n = 0; n < 8; ++n) {
        std::int64_t want = C[m * 8 + n];
        for (int k = 0; k < 32; ++k) want += value(io[m * 32 + k]) * value(io[512 + k * 8 + n]);
        std::int32_t got;
        std::memcpy(&got, &io[1280 + 4 * (m * 8 + n)], 4);
        CHECK(got == want);
      }
  }
}

TEST_CASE("vector_add: sectors per request show the value of vector accesses; one f32 add per element") {
  const auto p = programs::vector_add();
  for (std::map<std::string, std::int64_t> divisibility : {std::map<std::string, std::int64_t>{}, {{"n", 4}}}) {
    passes::PipelineOptions o;
    o.emit.divisibility = divisibility;
    const auto sim = backend_cuda::SimKernel::build(p, passes::run_pipeline(p, o).kernel);
    std::map<std::string, std::int64_t> s = {{"n", 1024}};
    auto b = vm::random_buffers(p, s, 1);
    const auto c = sim.launch(vm::as_arguments(b, s));
    // 16-byte vectors: every sector once; element accesses 16 bytes apart: each sector in four requests.
    CHECK(c.global_sectors == (divisibility.empty() ? 4 : 1) * 3 * 1024 * 4 / 32);
    CHECK(c.arithmetic_instructions == 1024);
    CHECK(c.memory_instructions == (divisibility.empty() ? 3 * 1024 : 3 * 256));
  }
}

#include "backend_cuda/driver.h"
#include "backend_cuda/launch.h"

TEST_CASE("Target::Best falls back to the simulator and says why; Target::Gpu does not fall back") {
  if (backend_cuda::driver_status().available) {
    MESSAGE("a GPU is present: the fallback is not exercised");
    return;
  }
  const auto p = programs::vector_add();
  const auto k = passes::run_pipeline(p).kernel;
  std::map<std::string, std::int64_t> s = {{"n", 100}};
  auto b = vm::random_buffers(p, s, 1);
  const auto report = backend_cuda::launch(p, k, vm::as_arguments(b, s), backend_cuda::Target::Best);
  CHECK(report.ran_on == backend_cuda::Target::Simulator);
  CHECK(report.note.find("no GPU (no CUDA driver") == 0);
  CHECK(report.counters.arithmetic_instructions == 256);  // one block: the whole tile is computed, the tail masked
  CHECK_THROWS_WITH_AS(backend_cuda::launch(p, k, vm::as_arguments(b, s), backend_cuda::Target::Gpu),
                       doctest::Contains("no CUDA driver"), Error);
}

TEST_CASE("index arithmetic: a 32-bit result with a wider intermediate is computed wide, like the interpreter") {
  // n * 65536 exceeds 2^31 for n = 40000; off itself is small. Computed in 32 bits it would wrap.
  const std::string text = R"(program wide(x: ptr<f32>, o: ptr<f32>, n: i32) grid(2) warps(1) {
  %v = global_view x {shape=[n], strides=[1]}
  %w = global_view o {shape=[n], strides=[1]}
  let off = n * 65536 / 65536 - n + blockIdx.x * 32 + 7
  %t = load_global %v[off] : f32[32] @ spatial(32) {masked}
  store_global %t, %w[off] {masked}
}
)";
  const auto p = vm::parse(text, "wide.vm");
  const auto kernel = passes::run_pipeline(p).kernel;
  // The product is computed in 64 bits; the quotient's range fits again and is narrowed.
  CHECK(kernel.source.find("(int)(ab::i64)((ab::u64)((ab::i64)n_ * (ab::i64)65536) / 65536ull)") != std::string::npos);
  check_same(p, {{"n", 40000}}, 13);
  check_same(p, {{"n", 50}}, 14);
}

TEST_CASE("launches outside CUDA's grid limits are refused before the kernel runs") {
  const auto p = vm::parse(R"(program g(x: ptr<f32>, n: i32) grid(1, n) warps(1) {
  %v = global_view x {shape=[n], strides=[1]}
  %t = load_global %v[blockIdx.y] : f32[32] @ spatial(32) {masked}
}
)");
  const auto sim = backend_cuda::SimKernel::build(p, passes::run_pipeline(p).kernel);
  auto buffers = vm::random_buffers(p, {{"n", 65536}}, 1);
  CHECK_THROWS_WITH(sim.launch(vm::as_arguments(buffers, {{"n", 65536}}), {1}),
                    doctest::Contains("grid dimension y is 65536, outside CUDA's range 0..65535"));
  CHECK_THROWS_WITH(backend_cuda::check_grid_limits("k", {std::int64_t{1} << 31, 1, 1}),
                    doctest::Contains("grid dimension x is 2147483648"));
  CHECK_NOTHROW(backend_cuda::check_grid_limits("k", {INT32_MAX, 65535, 65535}));
}

TEST_CASE("offset decode: codes cast into a dot match the interpreter within the partial sums' rounding") {
  // Integer codes in the mma A layout, cast to f16/bf16 and multiplied by 16 x 8 activations into f32. Where
  // the decoded tile feeds only the dot, the kernel leaves the magic offsets in and removes them with a
  // second mma (each of the 2K additions then rounds a partial sum up to sum |a| (|w| + 1152)); where the
  // tile is also stored, the decode is exact and stored bit for bit.
  for (DataType code : {DataType::signed_int(1), DataType::signed_int(2), DataType::unsigned_int(2), DataType::signed_int(3),
                        DataType::unsigned_int(4), DataType::signed_int(5), DataType::unsigned_int(7), DataType::signed_int(8)})
    for (DataType act : {DataType::f16(), DataType::bf16()})
      for (bool stored : {false, true}) {
        CAPTURE(code.name());
        CAPTURE(act.name());
        CAPTURE(stored);
        vm::Builder b("offset_dot", 1);
        auto q = b.pointer("q", DataType::unsigned_int(8));
        auto pa = b.pointer("a", act);
        auto pc = b.pointer("c", DataType::f32());
        auto bytes = b.load_global(b.global_view(q, {32, code.bits()}, {code.bits(), 1}), {0, 0},
                                   vm::reg(DataType::unsigned_int(8), {32, code.bits()}, spatial({32, 1}) * local({1, code.bits()})));
        auto w = b.cast(b.view(bytes, vm::reg(code, {16, 16}, mma_m16n8k16_a())), act);
        auto a = b.load_global(b.global_view(pa, {16, 8}, {8, 1}), {0, 0}, vm::reg(act, {16, 8}, layout::mma_m16n8k16_b()));
        auto acc = b.alloc_register(vm::reg(DataType::f32(), {16, 8}, layout::mma_m16n8k16_c()), 0.0);
        b.dot(acc, w, a);
        b.store_global(acc, b.global_view(pc, {16, 8}, {8, 1}), {0, 0});
        if (stored) b.store_global(w, b.global_view(b.pointer("w", act), {16, 16}, {16, 1}), {0, 0});
        const vm::Program p = b.build();
        const auto kernel = passes::run_pipeline(p).kernel;
        const bool offsets = !stored && !(code.bits() == 8 && act == DataType::bf16());
        CHECK((kernel.source.find("_o[w] = 0u;") != std::string::npos) == offsets);
        auto reference = vm::random_buffers(p, {}, 7);
        std::mt19937_64 rng(11);
        std::uniform_real_distribution<double> positive(0.25, 4.0);  // one sign: the offsets' sums do not cancel
        for (std::size_t i = 0; i < 128; ++i) isa::write_code(reference.at("a"), i, act.bits(), isa::encode(act, positive(rng)));
        auto emitted = reference;
        vm::interpret(p, vm::as_arguments(reference, {}));
        backend_cuda::SimKernel::build(p, kernel).launch(vm::as_arguments(emitted, {}));
        // |w| <= 255 for every format here; the offsets add at most 1024 + 128.
        for (int m = 0; m < 16; ++m)
          for (int n = 0; n < 8; ++n) {
            double sum_a = 0;
            for (int k = 0; k < 16; ++k)
              sum_a += std::fabs(isa::decode(act, isa::read_code(reference.at("a"), static_cast<std::size_t>(k * 8 + n), act.bits())));
            const double bound = std::ldexp(32.0, -24) * sum_a * (255.0 + (offsets ? 1152.0 : 0.0));
            const std::size_t i = static_cast<std::size_t>(m * 8 + n);
            const double want = isa::decode(DataType::f32(), isa::read_code(reference.at("c"), i, 32));
            const double got = isa::decode(DataType::f32(), isa::read_code(emitted.at("c"), i, 32));
            CAPTURE(m);
            CAPTURE(n);
            CHECK(std::fabs(got - want) <= bound);
          }
        if (stored) CHECK(reference.at("w") == emitted.at("w"));
      }
}
