// fp32 FMA peak probe, AVX-512 (built with -mavx512f -mfma; called only where cpuid allows).
#include <immintrin.h>

#include <chrono>

#include "cli/machine_floor.hpp"

namespace fusedmoe::cli {

double fma_peak_avx512(double seconds) {
  constexpr int kChains = 16;  // independent accumulators: enough to cover FMA latency x ports
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  long iterations = 0;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0.0;
  while (elapsed < seconds) {
    for (int repeat = 0; repeat < 4096; ++repeat) {
      for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    }
    iterations += 4096;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  alignas(64) float lanes[16];
  float sink = 0.0f;
  for (int i = 0; i < kChains; ++i) {
    _mm512_store_ps(lanes, acc[i]);
    for (float lane : lanes) sink += lane;
  }
  volatile float keep = sink;
  (void)keep;
  return static_cast<double>(iterations) * kChains * 16 * 2 / elapsed / 1e9;
}

}  // namespace fusedmoe::cli
