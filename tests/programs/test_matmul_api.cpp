// The drop-in call: C++ and C entry points, correct results, and a specific error for each misuse.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "backend_cuda/driver.h"
#include "isa/error.h"
#include "programs/anybit.h"
#include "programs/matmul_api.h"
#include "quant_matmul_harness.h"

using namespace anybit;
using programs::QuantFormat;
using programs::ZeroMode;
using isa::DataType;

namespace {

MatmulProblem problem_of(testing::QuantProblem& p) {
  return {p.format, p.M, p.N, p.K, p.buffers.at("A").data(), p.buffers.at("Wp").data(), p.buffers.at("S").data(),
          p.buffers.count("Z") ? p.buffers.at("Z").data() : nullptr, p.buffers.at("C").data(),
          p.buffers.count("B") ? p.buffers.at("B").data() : nullptr};
}

}  // namespace

TEST_CASE("matmul() on the simulator, and Device::best() falling back to it, match the reference") {
  for (const QuantFormat& f : {QuantFormat{DataType::signed_int(3), DataType::f16(), 128, ZeroMode::None},
                               QuantFormat{DataType::unsigned_int(4), DataType::bf16(), 64, ZeroMode::Integer, true}}) {
    CAPTURE(f.weights.name());
    auto p = testing::make_problem(f, 7, 64, 128, 21);
    const auto r = matmul(problem_of(p), Device::sim());
    CHECK_FALSE(r.ran_on_gpu);
    CHECK(testing::relative_error(p) <= testing::tolerance(f, 128));
    std::fill(p.buffers.at("C").begin(), p.buffers.at("C").end(), 0);
    const auto best = matmul(problem_of(p), Device::best());
    if (!backend_cuda::driver_status().available) CHECK(best.note.find("ran on the CPU simulator") != std::string::npos);
    CHECK(testing::relative_error(p) <= testing::tolerance(f, 128));
  }
}

TEST_CASE("kernels kept between calls: problems that differ in one format field, or in bounds, each get their own") {
  // matmul() keeps its kernels by format, schedule and parameter bounds. Each problem below shares the
  // schedule with the one before and differs in one thing the kernel depends on; a kernel kept for the
  // wrong one would compute a wrong result (or, for the bounds, refuse the launch).
  const QuantFormat base{DataType::unsigned_int(4), DataType::f16(), 64, ZeroMode::None};
  std::vector<std::pair<const char*, QuantFormat>> formats{{"base", base}};
  auto with = [&](const char* what, auto change) {
    QuantFormat f = formats.back().second;
    change(f);
    formats.emplace_back(what, f);
  };
  with("weights", [](QuantFormat& f) { f.weights = DataType::unsigned_int(3); });
  with("activations", [](QuantFormat& f) { f.activations = DataType::bf16(); });
  with("group", [](QuantFormat& f) { f.group = 32; });
  with("zeros", [](QuantFormat& f) { f.zeros = ZeroMode::Integer; });
  with("float zeros", [](QuantFormat& f) { f.zeros = ZeroMode::Float; });
  with("bias", [](QuantFormat& f) { f.bias = true; });
  MatmulOptions o;
  o.schedule = programs::Schedule{2, 1, 2, 2, true};
  for (int round = 0; round < 2; ++round)  // the second round finds every kernel kept
    for (const auto& [what, f] : formats) {
      CAPTURE(what);
      CAPTURE(round);
      auto p = testing::make_problem(f, 3, 32, 128, 41);
      matmul(problem_of(p), Device::sim(), o);
      CHECK(testing::relative_error(p) <= testing::tolerance(f, 128));
    }
  // K = 128 gave the kernel the bound K <= 128; K = 512 needs another.
  auto p = testing::make_problem(base, 3, 32, 512, 43);
  CHECK_NOTHROW(matmul(problem_of(p), Device::sim(), o));
  CHECK(testing::relative_error(p) <= testing::tolerance(base, 512));
}

TEST_CASE("matmul() misuse: each argument problem has its own message") {
  const QuantFormat f{DataType::signed_int(4), DataType::f16(), 32, ZeroMode::None};
  auto p = testing::make_problem(f, 3, 64, 64, 5);
  auto expect = [&](MatmulProblem q, const char* message, Device d = Device::sim()) {
    CAPTURE(message);
    CHECK_THROWS_WITH_AS(matmul(q, d), doctest::Contains(message), Error);
  };
  MatmulProblem q = problem_of(p);
  q.A = nullptr;
  expect(q, "matmul: A is null");
  q = problem_of(p);
  q.C = static_cast<std::uint8_t*>(q.C) + 2;
  expect(q, "matmul: C is not 16-byte aligned");
  q = problem_of(p);
  q.zeros = q.scales;
  expect(q, "zeros given, but the format has no zero points");
  q = problem_of(p);
  q.N = 72;
  expect(q, "N and K must be multiples of 16, got N=72");
  q = problem_of(p);
  q.format.group = 48;
  expect(q, "group size 48 must be a multiple of 16 that divides K=64");
  q = problem_of(p);
  q.format.zeros = ZeroMode::Float;
  expect(q, "matmul: zeros is null");
  q = problem_of(p);
  q.format.bias = true;
  expect(q, "matmul: bias is null");
  q = problem_of(p);
  q.bias = q.scales;
  expect(q, "bias given, but the format has none");
  if (!backend_cuda::driver_status().available) expect(problem_of(p), "no CUDA driver", Device::gpu());
}

TEST_CASE("C API: status codes and messages, packing, and a correct result") {
  const QuantFormat f{DataType::signed_int(5), DataType::f16(), 32, ZeroMode::None};
  auto p = testing::make_problem(f, 4, 64, 64, 8);
  anybit_format cf{"int5", "f16", 32, ANYBIT_ZEROS_NONE, 0};
  size_t bytes = 0;
  CHECK(anybit_packed_size(&cf, 64, 64, &bytes) == ANYBIT_OK);
  CHECK(bytes == p.packed.size());
  std::vector<std::uint8_t> packed(bytes);
  CHECK(anybit_pack_weights(&cf, p.q.codes.data(), 64, 64, packed.data()) == ANYBIT_OK);
  CHECK(packed == p.packed);
  {  // a code beyond int5's bits, and f8e4m3's NaN, have their own status, and leave `packed` as it was
    auto codes = p.q.codes;
    codes[70] = 0x20;
    CHECK(anybit_pack_weights(&cf, codes.data(), 64, 64, packed.data()) == ANYBIT_ERROR_WEIGHT_CODE);
    CHECK(std::string(anybit_last_error()).find("the code of W[1, 6] is 0x20, beyond the 5 bits of int5") != std::string::npos);
    const anybit_format e4m3{"f8e4m3", "f16", 32, ANYBIT_ZEROS_NONE, 0};
    codes[70] = 0xff;
    CHECK(anybit_pack_weights(&e4m3, codes.data(), 64, 64, packed.data()) == ANYBIT_ERROR_WEIGHT_CODE);
    CHECK(std::string(anybit_last_error()).find("W[1, 6] is NaN (code 0xff)") != std::string::npos);
    CHECK(packed == p.packed);
  }
  auto& c = p.buffers.at("C");
  CHECK(anybit_matmul(&cf, 4, 64, 64, p.buffers.at("A").data(), packed.data(), p.buffers.at("S").data(), nullptr, nullptr,
                      c.data(), ANYBIT_DEVICE_SIM) == ANYBIT_OK);
  CHECK(std::string(anybit_last_error()).empty());
  CHECK(testing::relative_error(p) <= testing::tolerance(f, 64));

  auto call = [&](const anybit_format* fmt_, int64_t N, const void* a, void* out, anybit_device d = ANYBIT_DEVICE_SIM,
                  const void* zeros = nullptr) {
    return anybit_matmul(fmt_, 4, N, 64, a, packed.data(), p.buffers.at("S").data(), zeros, nullptr, out, d);
  };
  CHECK(call(nullptr, 64, p.buffers.at("A").data(), c.data()) == ANYBIT_ERROR_NULL_POINTER);
  CHECK(std::string(anybit_last_error()) == "matmul: format is null");
  CHECK(call(&cf, 64, nullptr, c.data()) == ANYBIT_ERROR_NULL_POINTER);
  CHECK(call(&cf, 64, p.buffers.at("A").data() + 1, c.data()) == ANYBIT_ERROR_MISALIGNED_POINTER);
  CHECK(std::string(anybit_last_error()) == "matmul: A is not 16-byte aligned");
  CHECK(call(&cf, 65, p.buffers.at("A").data(), c.data()) == ANYBIT_ERROR_UNSUPPORTED_SHAPE);
  anybit_format bad{"int9", "f16", 32, ANYBIT_ZEROS_NONE, 0};
  CHECK(call(&bad, 64, p.buffers.at("A").data(), c.data()) == ANYBIT_ERROR_UNSUPPORTED_FORMAT);
  CHECK(std::string(anybit_last_error()).find("unknown data type 'int9'") != std::string::npos);
  anybit_format f32act{"int5", "f32", 32, ANYBIT_ZEROS_NONE, 0};
  CHECK(call(&f32act, 64, p.buffers.at("A").data(), c.data()) == ANYBIT_ERROR_UNSUPPORTED_FORMAT);
  anybit_format group{"int5", "f16", 24, ANYBIT_ZEROS_NONE, 0};
  CHECK(call(&group, 64, p.buffers.at("A").data(), c.data()) == ANYBIT_ERROR_GROUP_SIZE);
  anybit_format signed_zeros{"int5", "f16", 32, ANYBIT_ZEROS_INT, 0};
  CHECK(call(&signed_zeros, 64, p.buffers.at("A").data(), c.data(), ANYBIT_DEVICE_SIM, p.buffers.at("S").data()) ==
        ANYBIT_ERROR_ZERO_POINTS);
  if (!backend_cuda::driver_status().available)
    CHECK(call(&cf, 64, p.buffers.at("A").data(), c.data(), ANYBIT_DEVICE_GPU) == ANYBIT_ERROR_NO_GPU);
  CHECK(call(&cf, 64, p.buffers.at("A").data(), c.data(), static_cast<anybit_device>(9)) == ANYBIT_ERROR_INVALID_ARGUMENT);
  CHECK(std::string(anybit_last_error()) == "matmul: device 9 is not one of ANYBIT_DEVICE_BEST/GPU/SIM");
  CHECK(anybit_packed_size(&cf, 64, 64, nullptr) == ANYBIT_ERROR_NULL_POINTER);
}

TEST_CASE("matmul() with split-K: the call's own workspace, the caller's, and one too small") {
  const QuantFormat f{DataType::signed_int(4), DataType::f16(), 32, ZeroMode::None, true};
  auto p = testing::make_problem(f, 3, 64, 256, 31);
  MatmulOptions o;
  o.schedule = programs::Schedule{4, 1, 3, 4};
  auto r = matmul(problem_of(p), Device::sim(), o);
  // 64 columns are whole blocks of four warps and 256 of K whole chunks: the call runs the schedule as given,
  // in whole tiles.
  CHECK(r.schedule == programs::with_whole_tiles(*o.schedule, f, 64, 256));
  CHECK(r.schedule.whole_tiles);
  CHECK(r.counters.mma > 0);
  CHECK(testing::relative_error(p) <= testing::tolerance(f, 256));
  CHECK(matmul_workspace_bytes(f, *o.schedule, 3, 64, 256) == 4u * 3 * 64 * 4);
  CHECK(matmul_workspace_bytes(f, programs::Schedule{}, 3, 64, 256) == 0);
  alignas(16) static float workspace[4 * 3 * 64];
  std::fill(p.buffers.at("C").begin(), p.buffers.at("C").end(), 0);
  MatmulProblem q = problem_of(p);
  q.workspace = workspace, q.workspace_bytes = sizeof workspace;
  matmul(q, Device::sim(), o);
  CHECK(testing::relative_error(p) <= testing::tolerance(f, 256));
  q.workspace_bytes = sizeof workspace - 4;
  CHECK_THROWS_WITH_AS(matmul(q, Device::sim(), o), doctest::Contains("the workspace holds 3068 bytes, the schedule w4 m1 s3 k4 whole needs 3072"), Error);
  o.schedule = programs::Schedule{4, 1, 3, 0};
  CHECK_THROWS_WITH_AS(matmul(problem_of(p), Device::sim(), o), doctest::Contains("split_k must be 1..64, not 0"), Error);
}

TEST_CASE("matmul() with split activations: the workspace holds the partials, then A_hi and A_lo") {
  // f8e6m1 reaches 1.5 * 2^32: with f16 activations the call splits A into bf16 halves first.
  const QuantFormat f{DataType::small_float(6, 1), DataType::f16(), 32, ZeroMode::None};
  const programs::Schedule split{4, 1, 3, 2}, whole{4, 1, 3, 1};
  REQUIRE(programs::splits_activations(f, split));
  // Partials: 2 x 3 x 64 floats = 1536 bytes, then 2 x 3 x 128 bf16 at the next 256-byte boundary.
  CHECK(matmul_workspace_bytes(f, split, 3, 64, 128) == 1536u + 2 * 3 * 128 * 2);
  CHECK(matmul_workspace_bytes(f, whole, 3, 64, 128) == 2u * 3 * 128 * 2);
  CHECK(matmul_workspace_bytes(QuantFormat{DataType::small_float(6, 1), DataType::bf16(), 32, ZeroMode::None}, whole, 3, 64, 128) == 0);
  for (const auto& s : {split, whole}) {
    auto p = testing::make_problem(f, 3, 64, 128, 77);
    MatmulOptions o;
    o.schedule = s;
    const auto r = matmul(problem_of(p), Device::sim(), o);
    CHECK(testing::relative_error(p) <= testing::tolerance(f, 128));
    // The caller's workspace, one byte short of it, and exactly enough.
    std::vector<std::uint8_t> ws(matmul_workspace_bytes(f, r.schedule, 3, 64, 128) + 16);
    MatmulProblem q = problem_of(p);
    q.workspace = ws.data() + (16 - reinterpret_cast<std::uintptr_t>(ws.data()) % 16) % 16;
    q.workspace_bytes = ws.size() - 16 - 1;
    CHECK_THROWS_WITH_AS(matmul(q, Device::sim(), o), doctest::Contains("the workspace holds"), Error);
    q.workspace_bytes += 1;
    std::fill(p.buffers.at("C").begin(), p.buffers.at("C").end(), 0);
    matmul(q, Device::sim(), o);
    CHECK(testing::relative_error(p) <= testing::tolerance(f, 128));
  }
}

TEST_CASE("device-pointer calls and tuning need a GPU: clear errors without one") {
  if (backend_cuda::driver_status().available) return;  // the gpu tier exercises them
  const QuantFormat f{DataType::signed_int(4), DataType::f16(), 32, ZeroMode::None};
  auto p = testing::make_problem(f, 3, 64, 64, 5);
  CHECK_THROWS_WITH_AS(matmul_device(problem_of(p)), doctest::Contains("no CUDA driver"), Error);
  CHECK_THROWS_WITH_AS(tune_matmul(f, 1, 64, 64), doctest::Contains("tuning needs a GPU: no CUDA driver"), Error);
  anybit_format cf{"int4", "f16", 32, ANYBIT_ZEROS_NONE, 0};
  auto& c = p.buffers.at("C");
  CHECK(anybit_matmul_device(&cf, 3, 64, 64, p.buffers.at("A").data(), p.packed.data(), p.buffers.at("S").data(), nullptr,
                             nullptr, c.data(), nullptr, 0, nullptr) == ANYBIT_ERROR_NO_GPU);
  // Argument checks come first, GPU or not.
  CHECK(anybit_matmul_device(&cf, 3, 64, 64, nullptr, p.packed.data(), p.buffers.at("S").data(), nullptr, nullptr, c.data(),
                             nullptr, 0, nullptr) == ANYBIT_ERROR_NULL_POINTER);
  size_t bytes = 1;
  CHECK(anybit_workspace_size(&cf, 1, 4096, 4096, &bytes) == ANYBIT_OK);
  const QuantFormat f32g{DataType::signed_int(4), DataType::f16(), 32, ZeroMode::None};
  CHECK(bytes == matmul_workspace_bytes(f32g, programs::choose_schedule(f32g, 1, 4096, 4096), 1, 4096, 4096));
  CHECK(bytes > 0);  // M = 1 splits K
}

TEST_CASE("schedules as text, and the tuned-schedule store") {
  CHECK(parse_schedule("w8 m2 s4 k16") == programs::Schedule{8, 2, 4, 16});
  CHECK(parse_schedule("w4 m1 s3 k2 wa") == programs::Schedule{4, 1, 3, 2, true});
  CHECK(parse_schedule(programs::describe(programs::Schedule{2, 2, 2, 1, true})) == programs::Schedule{2, 2, 2, 1, true});
  CHECK_THROWS_WITH_AS(parse_schedule("w4 m1 s3 k1 wb"), doctest::Contains("is not of the form"), Error);
  CHECK(parse_schedule(programs::describe(programs::Schedule{2, 1, 0, 3})) == programs::Schedule{2, 1, 0, 3});
  CHECK_THROWS_WITH_AS(parse_schedule("w4 m1 s3"), doctest::Contains("is not of the form 'w4 m1 s3 k1'"), Error);
  CHECK_THROWS_WITH_AS(parse_schedule("w4 m1 s3 k1 extra"), doctest::Contains("is not of the form"), Error);
  CHECK_THROWS_WITH_AS(parse_schedule("w5 m1 s3 k1"), doctest::Contains("warps must be 1, 2, 4 or 8, not 5"), Error);
  // Two or four chunks an iteration: " u2" / " u4" after the optional " wa".
  CHECK(parse_schedule("w4 m1 s4 k2 wa u2") == programs::Schedule{4, 1, 4, 2, true, 2});
  CHECK(parse_schedule("w4 m1 s4 k1 u4") == programs::Schedule{4, 1, 4, 1, false, 4});
  CHECK(programs::describe(programs::Schedule{4, 1, 4, 2, true, 2}) == "w4 m1 s4 k2 wa u2");
  CHECK(parse_schedule(programs::describe(programs::Schedule{8, 2, 3, 1, false, 2})) == programs::Schedule{8, 2, 3, 1, false, 2});
  CHECK_THROWS_WITH_AS(parse_schedule("w4 m1 s4 k1 u3"), doctest::Contains("unroll must be 1, 2 or 4, not 3"), Error);
  CHECK_THROWS_WITH_AS(parse_schedule("w4 m1 s4 k1 u2 wa"), doctest::Contains("is not of the form"), Error);
  CHECK_THROWS_WITH_AS(parse_schedule("w4 m1 s4 k1 u"), doctest::Contains("is not of the form"), Error);
  CHECK_THROWS_WITH_AS(parse_schedule("w4 m1 s4 k1 ux"), doctest::Contains("is not of the form"), Error);
  // Weights decoded once into shared memory: " sd" where " wa" would be.
  const programs::Schedule sd{4, 2, 3, 1, false, 2, false, true};
  CHECK(programs::describe(sd) == "w4 m2 s3 k1 sd u2");
  CHECK(parse_schedule("w4 m2 s3 k1 sd u2") == sd);
  CHECK_THROWS_WITH_AS(parse_schedule("w4 m1 s4 k1 wa sd"), doctest::Contains("exclude each other"), Error);
  CHECK_THROWS_WITH_AS(parse_schedule("w4 m1 s0 k1 sd"), doctest::Contains("needs shared-memory stages"), Error);
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("anybit_tuned_{}", ::getpid());
  setenv("ANYBIT_CACHE_DIR", dir.c_str(), 1);
  const QuantFormat f{DataType::unsigned_int(3), DataType::bf16(), 64, ZeroMode::Float, true};
  const auto path = tuned_schedule_path(f, 16, 4096, 8192, "sm_90");
  CHECK(path.parent_path() == dir / "tuning");
  CHECK(path.filename() == "uint3_bf16_g64_zfloat_b1_M16_N4096_K8192_sm_90.txt");
  CHECK_FALSE(load_tuned_schedule(path).has_value());
  store_tuned_schedule(path, {8, 1, 4, 2});
  CHECK(load_tuned_schedule(path) == programs::Schedule{8, 1, 4, 2});
  std::ofstream(path) << "w4 m1\n";
  CHECK_THROWS_WITH_AS(load_tuned_schedule(path), doctest::Contains("(delete the file to tune again)"), Error);
  unsetenv("ANYBIT_CACHE_DIR");
  std::filesystem::remove_all(dir);
}

#include <thread>

TEST_CASE("8 threads calling matmul() at once on the simulator all get correct results") {
  const QuantFormat formats[] = {{DataType::signed_int(4), DataType::f16(), 64, ZeroMode::None},
                                 {DataType::unsigned_int(3), DataType::bf16(), 32, ZeroMode::Integer, true}};
  std::vector<testing::QuantProblem> problems;
  for (int i = 0; i < 8; ++i) problems.push_back(testing::make_problem(formats[i % 2], 1 + 5 * i, 48 + 16 * (i % 3), 128, 60 + i));
  std::vector<std::string> errors(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] {
      try {
        matmul(problem_of(problems[i]), Device::sim());
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < 8; ++i) {
    CAPTURE(i);
    CHECK(errors[i].empty());
    CHECK(testing::relative_error(problems[i]) <= testing::tolerance(problems[i].format, 128));
  }
}

TEST_CASE("kernels touch nothing outside their buffers: seeded random shapes, formats and schedules") {
  // The simulator checks every global access against the launch's buffers, which are exactly the sizes the
  // API documents (no slack): an access outside A, W, scales, zeros, bias, C or the workspace fails the run.
  std::mt19937 rng(2024);
  std::vector<DataType> formats;
  for (DataType t : isa::all_dtypes())
    if (t.bits() <= 8 && !t.is_bool()) formats.push_back(t);
  for (int i = 0; i < 12; ++i) {
    const DataType t = formats[rng() % formats.size()];
    const std::int64_t K = 64 * (1 + rng() % 4), N = 16 * (1 + rng() % 6), M = 1 + rng() % 40;
    const int groups[] = {32, 64, static_cast<int>(K)};
    ZeroMode zeros = ZeroMode::None;
    if (t.kind() == isa::TypeKind::UnsignedInt) zeros = static_cast<ZeroMode>(rng() % 3);
    const QuantFormat f{t, rng() % 2 ? DataType::f16() : DataType::bf16(), groups[rng() % 3], zeros, rng() % 2 == 0};
    MatmulOptions o;
    o.schedule = programs::Schedule{1 << (rng() % 4), 1 + static_cast<int>(rng() % 2), rng() % 3 ? 2 + static_cast<int>(rng() % 3) : 0,
                                    1 + static_cast<int>(rng() % 4), rng() % 2 == 0};
    o.sim_seed = rng();
    CAPTURE(t.name());
    CAPTURE(f.group);
    CAPTURE(M);
    CAPTURE(N);
    CAPTURE(K);
    CAPTURE(programs::describe(*o.schedule));
    auto p = testing::make_problem(f, M, N, K, rng());
    // Exact-size copies of every buffer, so that the bounds are the documented sizes.
    CHECK_NOTHROW(matmul(problem_of(p), Device::sim(), o));
    CHECK(testing::relative_error(p) <= testing::tolerance(f, K));
  }
}

TEST_CASE("tuning candidates fit the architecture's shared memory") {
  const programs::QuantFormat int8{isa::DataType::signed_int(8), isa::DataType::f16(), 128, programs::ZeroMode::None};
  const auto hopper = tuning_candidates(int8, 64, 4096, "sm_90"), ada = tuning_candidates(int8, 64, 4096, "sm_89");
  CHECK(ada.size() < hopper.size());  // 8 warps x 6 stages of 8-bit weights need 145 KB; sm_89 allows 99
  for (const auto& s : ada)
    CHECK(vm::verify(programs::quant_matmul(int8, s)).shared.total_bytes <= 99 * 1024);
  // M <= 8 adds the weights-on-A schedules; M <= 16 keeps one M tile; split-K and unroll keep two
  // iterations per slice.
  const auto small = tuning_candidates(int8, 1, 256, "sm_90");
  CHECK(std::any_of(small.begin(), small.end(), [](const auto& s) { return s.weights_on_a; }));
  for (const auto& s : small) {
    CHECK(s.m_tiles == 1);
    CHECK(256 / (16 * programs::chunk_steps(int8)) >= 2 * s.split_k * s.unroll);
  }
  CHECK(std::none_of(small.begin(), small.end(), [](const auto& s) { return s.unroll > 1; }));  // 2 chunks
  // Weights decoded into shared memory only where the batch fills the block's rows.
  CHECK(std::none_of(small.begin(), small.end(), [](const auto& s) { return s.shared_decode; }));
  const auto prefill = tuning_candidates(int8, 128, 4096, "sm_90");
  CHECK(std::any_of(prefill.begin(), prefill.end(), [](const auto& s) { return s.shared_decode && programs::block_rows(s) == 128; }));
  for (const auto& s : prefill)
    if (s.shared_decode) CHECK(programs::block_rows(s) <= 128);
  CHECK(std::any_of(hopper.begin(), hopper.end(), [](const auto& s) { return s.unroll == 2; }));
  // four chunks an iteration too, where the stages fit (int2 at M = 1: the schedule choose_schedule takes)
  const programs::QuantFormat int2{isa::DataType::signed_int(2), isa::DataType::f16(), 128, programs::ZeroMode::None};
  const auto narrow = tuning_candidates(int2, 1, 4096, "sm_80");
  auto chosen = programs::choose_schedule(int2, 1, 4096, 4096, {"sm_80", 0});
  chosen.whole_tiles = false;  // derived from N when a candidate runs (with_whole_tiles)
  CHECK(std::find(narrow.begin(), narrow.end(), chosen) != narrow.end());
  CHECK(std::any_of(narrow.begin(), narrow.end(), [](const auto& s) { return s.unroll == 4; }));
}
