// AVX2 panel kernel: the same packed panels as AVX-512, read as two 32-byte halves (lanes 0-7, 8-15),
// widened with a shift and a mask, fp32 FMAs. Compiled with -mavx2 -mfma.
#include <immintrin.h>

#include <utility>

#include "backends/cpu_avx2/kernels/avx2_bf16_panel.hpp"

namespace fusedmoe::prepacked {

namespace {

constexpr int kAvx2MaxRows = 3;  // 3 rows x 4 accumulators + 4 panel vectors fit the 16 ymm registers

template <int kRows>
void panel_rows(const float* a, const std::uint32_t* panel, std::int64_t depth, float* c, bool accumulate) {
  // acc[r][0]: columns 0-7, [1]: 8-15, [2]: 16-23, [3]: 24-31.
  __m256 acc[kRows][4];
  for (int r = 0; r < kRows; ++r) {
    for (int q = 0; q < 4; ++q)
      acc[r][q] = accumulate ? _mm256_loadu_ps(c + r * kPanelWidth + 8 * q) : _mm256_setzero_ps();
  }
  const __m256i high_mask = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
  for (std::int64_t k = 0; k < depth; ++k) {
    _mm_prefetch(reinterpret_cast<const char*>(panel + k * 16) + kPrefetchBytes, _MM_HINT_T0);
    const __m256i first = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + k * 16));
    const __m256i second = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + k * 16 + 8));
    const __m256 b0 = _mm256_castsi256_ps(_mm256_slli_epi32(first, 16));
    const __m256 b1 = _mm256_castsi256_ps(_mm256_slli_epi32(second, 16));
    const __m256 b2 = _mm256_castsi256_ps(_mm256_and_si256(first, high_mask));
    const __m256 b3 = _mm256_castsi256_ps(_mm256_and_si256(second, high_mask));
    for (int r = 0; r < kRows; ++r) {
      const __m256 x = _mm256_broadcast_ss(a + k * kAvx2MaxRows + r);
      acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
      acc[r][2] = _mm256_fmadd_ps(x, b2, acc[r][2]);
      acc[r][3] = _mm256_fmadd_ps(x, b3, acc[r][3]);
    }
  }
  for (int r = 0; r < kRows; ++r) {
    for (int q = 0; q < 4; ++q) _mm256_storeu_ps(c + r * kPanelWidth + 8 * q, acc[r][q]);
  }
}

void avx2_panel(const void* a_tile, int rows, const std::uint32_t* panel, std::int64_t depth, float* c,
                bool accumulate) {
  const auto* a = static_cast<const float*>(a_tile);
  switch (rows) {
    case 1:
      panel_rows<1>(a, panel, depth, c, accumulate);
      break;
    case 2:
      panel_rows<2>(a, panel, depth, c, accumulate);
      break;
    default:
      panel_rows<3>(a, panel, depth, c, accumulate);
      break;
  }
}

// exp(x) for 8 lanes: 2^n * p(f) as in the AVX-512 kernel; 2^n assembled in the exponent bits, with x
// clamped to [-87, 88] so n stays a normal exponent.
__m256 exp8(__m256 x) {
  x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.0f)), _mm256_set1_ps(-87.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 f = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  f = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), f);
  __m256 p = _mm256_set1_ps(1.3981999507e-3f);
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(f, f), f);
  p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));
  const __m256i exponent =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(exponent));
}

__m256 erf8(__m256 x) {
  const __m256 sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0f));
  const __m256 a = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
  const __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f),
                                 _mm256_fmadd_ps(a, _mm256_set1_ps(0.3275911f), _mm256_set1_ps(1.0f)));
  __m256 p = _mm256_set1_ps(1.061405429f);
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.453152027f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
  p = _mm256_mul_ps(p, t);
  const __m256 y = _mm256_fnmadd_ps(p, exp8(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(a, a))),
                                    _mm256_set1_ps(1.0f));
  return _mm256_or_ps(y, sign);
}

void avx2_activation(const float* tile, int rows, void* out_tile, bool silu) {
  auto* out = static_cast<float*>(out_tile);
  for (int r = 0; r < rows; ++r) {
    for (int half = 0; half < 2; ++half) {
      const __m256 gate = _mm256_loadu_ps(tile + r * kPanelWidth + 8 * half);
      const __m256 up = _mm256_loadu_ps(tile + r * kPanelWidth + 16 + 8 * half);
      __m256 activated;
      if (silu) {
        activated = _mm256_div_ps(
            gate, _mm256_add_ps(_mm256_set1_ps(1.0f), exp8(_mm256_sub_ps(_mm256_setzero_ps(), gate))));
      } else {
        const __m256 half_gate = _mm256_mul_ps(gate, _mm256_set1_ps(0.5f));
        activated = _mm256_fmadd_ps(
            half_gate, erf8(_mm256_mul_ps(gate, _mm256_set1_ps(0.70710678118654752f))), half_gate);
      }
      alignas(32) float values[8];
      _mm256_store_ps(values, _mm256_mul_ps(activated, up));
      for (int j = 0; j < 8; ++j) out[(8 * half + j) * kAvx2MaxRows + r] = values[j];  // packed tile
    }
  }
}

void avx2_accumulate(const float* tile, int rows, const float* weight, float* const* destination) {
  for (int r = 0; r < rows; ++r) {
    const __m256 w = _mm256_set1_ps(weight[r]);
    for (int q = 0; q < 4; ++q) {
      float* target = destination[r] + 8 * q;
      _mm256_storeu_ps(target, _mm256_fmadd_ps(w, _mm256_loadu_ps(tile + r * kPanelWidth + 8 * q),
                                               _mm256_loadu_ps(target)));
    }
  }
}

}  // namespace

PanelKernelInfo avx2_panel_kernel() {
  return {PanelLayout::widen, avx2_panel, avx2_activation, avx2_accumulate, kAvx2MaxRows, "avx2"};
}

}  // namespace fusedmoe::prepacked
