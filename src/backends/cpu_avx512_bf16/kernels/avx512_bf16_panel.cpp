// AVX-512 panel kernel: bf16 panel widened to fp32 with a shift and a mask, then fp32 FMAs.
// Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma; called only when cpuid says so.
// WORKAROUND(gcc12-avx512-undefined): GCC 12's AVX-512 headers build shift intrinsics on
// _mm512_undefined_epi32(), which -Wmaybe-uninitialized flags inside the header.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <utility>

#include "backends/cpu_avx512_bf16/kernels/avx512_bf16_panel.hpp"
#include "backends/cpu_avx512_bf16/kernels/avx512_common.hpp"

namespace fusedmoe::prepacked {

namespace {

template <int kRows>
void panel_rows(const float* a, const std::uint32_t* panel, std::int64_t depth, float* c, bool accumulate) {
  // NOTE: fp32 FMA path (fp32 activations, or CPUs without AVX512_BF16); see avx512_bf16_dot_panel.cpp.
  __m512 low[kRows], high[kRows];
  for (int r = 0; r < kRows; ++r) {
    low[r] = accumulate ? _mm512_loadu_ps(c + r * kPanelWidth) : _mm512_setzero_ps();
    high[r] = accumulate ? _mm512_loadu_ps(c + r * kPanelWidth + 16) : _mm512_setzero_ps();
  }
  const __m512i high_mask = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  for (std::int64_t k = 0; k < depth; ++k) {
    // One 64-byte panel row per k, kPrefetchBytes ahead (see avx512_bf16_dot_panel.cpp for the measurement).
    _mm_prefetch(reinterpret_cast<const char*>(panel + k * 16) + kPrefetchBytes, _MM_HINT_T0);
    const __m512i packed = _mm512_loadu_si512(panel + k * 16);
    const __m512 b_low = _mm512_castsi512_ps(_mm512_slli_epi32(packed, 16));
    const __m512 b_high = _mm512_castsi512_ps(_mm512_and_si512(packed, high_mask));
    for (int r = 0; r < kRows; ++r) {
      const __m512 x = _mm512_set1_ps(a[k * kMaxTileRows + r]);
      low[r] = _mm512_fmadd_ps(x, b_low, low[r]);
      high[r] = _mm512_fmadd_ps(x, b_high, high[r]);
    }
  }
  for (int r = 0; r < kRows; ++r) {
    _mm512_storeu_ps(c + r * kPanelWidth, low[r]);
    _mm512_storeu_ps(c + r * kPanelWidth + 16, high[r]);
  }
}

template <int... kRows>
void dispatch(std::integer_sequence<int, kRows...>, int rows, const float* a, const std::uint32_t* panel,
              std::int64_t depth, float* c, bool accumulate) {
  ((rows == kRows + 1 ? panel_rows<kRows + 1>(a, panel, depth, c, accumulate) : void()), ...);
}

void avx512_panel(const void* a, int rows, const std::uint32_t* panel, std::int64_t depth, float* c,
                  bool accumulate) {
  dispatch(std::make_integer_sequence<int, kMaxTileRows>{}, rows, static_cast<const float*>(a), panel, depth,
           c, accumulate);
}

// exp(x) for 16 lanes: 2^n * p(f), n = round(x log2 e), f = x - n ln 2 (two-part ln 2), degree-6 polynomial;
// relative error ~2e-7; scalef handles overflow to inf and underflow to 0.
__m512 exp16(__m512 x) {
  x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.7f)), _mm512_set1_ps(-103.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 f = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  f = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), f);
  __m512 p = _mm512_set1_ps(1.3981999507e-3f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(f, f), f);
  p = _mm512_add_ps(p, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// erf(x), Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7).
__m512 erf16(__m512 x) {
  const __m512 sign = _mm512_and_ps(x, _mm512_set1_ps(-0.0f));
  const __m512 a = _mm512_andnot_ps(_mm512_set1_ps(-0.0f), x);
  const __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f),
                                 _mm512_fmadd_ps(a, _mm512_set1_ps(0.3275911f), _mm512_set1_ps(1.0f)));
  __m512 p = _mm512_set1_ps(1.061405429f);
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.453152027f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421413741f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284496736f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254829592f));
  p = _mm512_mul_ps(p, t);
  const __m512 y = _mm512_fnmadd_ps(p, exp16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(a, a))),
                                    _mm512_set1_ps(1.0f));
  return _mm512_or_ps(y, sign);
}

}  // namespace

// act(gate) * up for one row of a tile (16 lanes), shared with the bf16 dot-product kernel.
__m512 activate_row(const float* tile_row, bool silu) {
  const __m512 gate = _mm512_loadu_ps(tile_row);
  const __m512 up = _mm512_loadu_ps(tile_row + 16);
  __m512 activated;
  if (silu) {
    activated = _mm512_div_ps(
        gate, _mm512_add_ps(_mm512_set1_ps(1.0f), exp16(_mm512_sub_ps(_mm512_setzero_ps(), gate))));
  } else {
    const __m512 half_gate = _mm512_mul_ps(gate, _mm512_set1_ps(0.5f));
    activated = _mm512_fmadd_ps(half_gate, erf16(_mm512_mul_ps(gate, _mm512_set1_ps(0.70710678118654752f))),
                                half_gate);
  }
  return _mm512_mul_ps(activated, up);
}

namespace {

void avx512_activation(const float* tile, int rows, void* out_tile, bool silu) {
  auto* out = static_cast<float*>(out_tile);
  for (int r = 0; r < rows; ++r) {
    const __m512 values = activate_row(tile + r * kPanelWidth, silu);
    // Scatter into the packed tile: column j of row r lands at out[j * kMaxTileRows + r].
    const __m512i index = _mm512_add_epi32(
        _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                           _mm512_set1_epi32(kMaxTileRows)),
        _mm512_set1_epi32(r));
    _mm512_i32scatter_ps(out, index, values, 4);
  }
}

void avx512_accumulate(const float* tile, int rows, const float* weight, float* const* destination) {
  for (int r = 0; r < rows; ++r) {
    const __m512 w = _mm512_set1_ps(weight[r]);
    float* target = destination[r];
    _mm512_storeu_ps(target,
                     _mm512_fmadd_ps(w, _mm512_loadu_ps(tile + r * kPanelWidth), _mm512_loadu_ps(target)));
    _mm512_storeu_ps(target + 16, _mm512_fmadd_ps(w, _mm512_loadu_ps(tile + r * kPanelWidth + 16),
                                                  _mm512_loadu_ps(target + 16)));
  }
}

}  // namespace

PanelKernelInfo avx512_panel_kernel() {
  return {PanelLayout::widen, avx512_panel, avx512_activation, avx512_accumulate, kMaxTileRows, "avx512"};
}

AccumulateEpilogue avx512_accumulate_epilogue() {
  return avx512_accumulate;
}

}  // namespace fusedmoe::prepacked
