// Uses the installed anybit: quantizes random weights to int3 (group 64), runs the drop-in matmul on the
// best device, and checks it against the double reference.
#include <cmath>
#include <cstdio>
#include <random>

#include "isa/bitpack.h"
#include "programs/matmul_api.h"

int main() {
  using namespace anybit;
  const programs::QuantFormat f{isa::parse_dtype("int3"), isa::DataType::f16(), 64, programs::ZeroMode::None};
  const std::int64_t M = 3, N = 64, K = 128;
  std::mt19937 rng(7);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<float> w(N * K);
  for (auto& x : w) x = static_cast<float>(normal(rng) * 0.05);
  const auto q = programs::quantize(f, w, N, K);
  const auto packed = programs::pack_weights(f, q.codes, N, K);
  std::vector<std::uint32_t> a(M * K);
  std::vector<std::uint8_t> A(M * K * 2), S(q.scales.size() * 2), C(M * N * 2);
  for (std::size_t i = 0; i < a.size(); ++i) isa::write_code(A, i, 16, a[i] = isa::encode(f.activations, normal(rng)));
  for (std::size_t i = 0; i < q.scales.size(); ++i) isa::write_code(S, i, 16, q.scales[i]);
  const auto result = matmul({f, M, N, K, A.data(), packed.data(), S.data(), nullptr, C.data()}, Device::best());
  const auto ref = programs::reference_quant_matmul(f, a, q, M, N, K);
  double worst = 0, scale = 1e-30;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    worst = std::max(worst, std::fabs(isa::decode(f.activations, isa::read_code(C, i, 16)) - ref[i]));
    scale = std::max(scale, std::fabs(ref[i]));
  }
  const bool ok = worst / scale < 0.01;
  std::printf("consumer: %s; relative error %.3g: %s\n", result.note.c_str(), worst / scale, ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}
