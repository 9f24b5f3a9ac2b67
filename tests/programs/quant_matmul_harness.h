// Shared harness for the quantized matmul tests: random problem, quantize, pack, run, compare.
#pragma once

#include <cmath>
#include <functional>
#include <random>

#include "isa/bitpack.h"
#include "programs/quant_matmul.h"
#include "vm/interpreter.h"

namespace anybit::testing {

struct QuantProblem {
  programs::QuantFormat format;
  std::int64_t M, N, K;
  std::vector<std::uint32_t> a, bias;
  programs::Quantized q;
  std::vector<std::uint8_t> packed;
  std::map<std::string, std::vector<std::uint8_t>> buffers;
  std::map<std::string, std::int64_t> scalars;
};

inline QuantProblem make_problem(const programs::QuantFormat& f, std::int64_t M, std::int64_t N, std::int64_t K,
                                 std::uint64_t seed) {
  QuantProblem p{f, M, N, K, {}, {}, {}, {}, {}, {}};
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<float> w(static_cast<std::size_t>(N * K));
  for (auto& x : w) x = static_cast<float>(normal(rng) * 0.05);
  p.q = programs::quantize(f, w, N, K);
  p.packed = programs::pack_weights(f, p.q.codes, N, K);
  const int abits = f.activations.bits();
  p.a.resize(static_cast<std::size_t>(M * K));
  for (auto& c : p.a) c = isa::encode(f.activations, normal(rng));
  auto pack_codes = [](const std::vector<std::uint32_t>& codes, int bits) {
    std::vector<std::uint8_t> out(isa::packed_bytes(codes.size(), bits), 0);
    for (std::size_t i = 0; i < codes.size(); ++i) isa::write_code(out, i, bits, codes[i]);
    return out;
  };
  p.buffers["A"] = pack_codes(p.a, abits);
  p.buffers["Wp"] = p.packed;
  p.buffers["S"] = pack_codes(p.q.scales, abits);
  if (f.zeros == programs::ZeroMode::Integer) p.buffers["Z"] = pack_codes(p.q.zeros, f.weights.bits());
  if (f.zeros == programs::ZeroMode::Float) p.buffers["Z"] = pack_codes(p.q.zeros, abits);
  if (f.bias) {
    p.bias.resize(static_cast<std::size_t>(N));
    for (auto& c : p.bias) c = isa::encode(f.activations, normal(rng));
    p.buffers["B"] = pack_codes(p.bias, abits);
  }
  p.buffers["C"].assign(isa::packed_bytes(static_cast<std::size_t>(M * N), abits), 0);
  p.scalars = {{"M", M}, {"N", N}, {"K", K}};
  return p;
}

inline vm::Arguments arguments(QuantProblem& p) {
  vm::Arguments args;
  for (auto& [name, bytes] : p.buffers) args.buffers[name] = std::span<std::uint8_t>(bytes);
  args.scalars = p.scalars;
  return args;
}

// A format, a schedule and a shape, as the schedule tests list them.
struct ScheduleCase {
  programs::QuantFormat f;
  programs::Schedule s;
  std::int64_t M, N, K;
};

using Runner = std::function<void(const vm::Program&, const vm::Arguments&)>;

// Where schedule `s` splits the activations (programs::splits_activations): the As workspace, written by
// split_activations through `run`, for a kernel that reads it.
inline void split_activations(QuantProblem& p, const programs::Schedule& s, const Runner& run) {
  if (!programs::splits_activations(p.format, s)) return;
  p.buffers["As"].assign(static_cast<std::size_t>(2 * p.M * p.K * 2), 0xff);  // NaN until written
  run(programs::split_activations(p.format), arguments(p));
}

// Runs the kernel for schedule `s`, after the activations' split where it splits them and before the
// reduction under split-K, through `run` (the interpreter or a simulator launch); the workspaces are part
// of the problem's buffers.
inline void run_schedule(QuantProblem& p, const programs::Schedule& s, const Runner& run) {
  if (s.split_k > 1) p.buffers["P"].assign(static_cast<std::size_t>(s.split_k * p.M * p.N * 4), 0xff);  // NaN until written
  split_activations(p, s, run);
  run(programs::quant_matmul(p.format, s), arguments(p));
  if (s.split_k > 1) run(programs::splitk_reduce(p.format, s.split_k), arguments(p));
}

// Largest |C - reference| relative to the largest |reference| (after rounding C to the activation type).
inline double relative_error(const QuantProblem& p) {
  const auto ref = programs::reference_quant_matmul(p.format, p.a, p.q, p.M, p.N, p.K, p.bias);
  double worst = 0, scale = 1e-30;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double got = isa::decode(p.format.activations, isa::read_code(p.buffers.at("C"), i, p.format.activations.bits()));
    worst = std::max(worst, std::fabs(got - ref[i]));
    scale = std::max(scale, std::fabs(ref[i]));
  }
  return worst / scale;
}

// Tolerance stated per activation type: W is rounded to it before the product (one half-ulp relative per
// weight), and C is rounded to it once; sums of K such terms grow like sqrt(K).
inline double tolerance(const programs::QuantFormat& f, std::int64_t K) {
  const double ulp = f.activations == isa::DataType::f16() ? std::ldexp(1.0, -10) : std::ldexp(1.0, -7);
  return ulp * (2.0 + std::sqrt(static_cast<double>(K)) / 4.0);
}

}  // namespace anybit::testing
