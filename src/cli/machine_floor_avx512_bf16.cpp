// bf16 dot-product peak probe (vdpbf16ps; built with -mavx512bf16; called only where cpuid allows).
#include <immintrin.h>

#include <chrono>

#include "cli/machine_floor.hpp"

namespace fusedmoe::cli {

double bf16_dot_peak_avx512(double seconds) {
  constexpr int kChains = 16;
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  const __m512bh a = reinterpret_cast<__m512bh>(_mm512_set1_epi16(0x3f80));  // 1.0
  const __m512bh b = reinterpret_cast<__m512bh>(_mm512_set1_epi16(0x3380));  // 2^-24
  long iterations = 0;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0.0;
  while (elapsed < seconds) {
    for (int repeat = 0; repeat < 4096; ++repeat) {
      for (int i = 0; i < kChains; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
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
  return static_cast<double>(iterations) * kChains * 16 * 4 / elapsed /
         1e9;  // 2 pairs x (mul + add) per lane
}

}  // namespace fusedmoe::cli
