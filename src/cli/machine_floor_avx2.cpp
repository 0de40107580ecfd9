// fp32 FMA peak probe, AVX2 + FMA (built with -mavx2 -mfma; called only where cpuid allows).
#include <immintrin.h>

#include <chrono>

#include "cli/machine_floor.hpp"

namespace fusedmoe::cli {

double fma_peak_avx2(double seconds) {
  constexpr int kChains = 12;
  __m256 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  long iterations = 0;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0.0;
  while (elapsed < seconds) {
    for (int repeat = 0; repeat < 4096; ++repeat) {
      for (int i = 0; i < kChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    }
    iterations += 4096;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  alignas(32) float lanes[8];
  float sink = 0.0f;
  for (int i = 0; i < kChains; ++i) {
    _mm256_store_ps(lanes, acc[i]);
    for (float lane : lanes) sink += lane;
  }
  volatile float keep = sink;
  (void)keep;
  return static_cast<double>(iterations) * kChains * 8 * 2 / elapsed / 1e9;
}

}  // namespace fusedmoe::cli
