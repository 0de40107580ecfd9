// AVX512_BF16 panel kernel: bf16 pairs of A times bf16 pair panels with vdpbf16ps (fp32 accumulation).
// Measured on the 2-core development Xeon (single thread, register-resident loop): vdpbf16ps issues at the
// same rate as an fp32 FMA there but does twice the flops (72-91 vs 32-40 GFLOP/s), so with bf16
// activations this is the prefill path. Built with -mavx512bf16; called only when cpuid reports it.
// WORKAROUND(gcc12-avx512-undefined): see avx512_bf16_panel.cpp.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <utility>

#include "backends/cpu_avx512_bf16/kernels/avx512_bf16_panel.hpp"
#include "backends/cpu_avx512_bf16/kernels/avx512_common.hpp"

namespace fusedmoe::prepacked {

namespace {

template <int kRows>
void dot_rows(const std::uint32_t* a, const std::uint32_t* panel, std::int64_t depth, float* c,
              bool accumulate) {
  __m512 low[kRows], high[kRows];
  for (int r = 0; r < kRows; ++r) {
    low[r] = accumulate ? _mm512_loadu_ps(c + r * kPanelWidth) : _mm512_setzero_ps();
    high[r] = accumulate ? _mm512_loadu_ps(c + r * kPanelWidth + 16) : _mm512_setzero_ps();
  }
  for (std::int64_t pair = 0; pair < depth / 2; ++pair) {
    // Both 64-byte lines of the pair row kPrefetchBytes ahead (measured A/B on the 2-core Xeon,
    // qwen3-30b-a3b, alternating runs: 512 bytes and one line -> 4 KiB and both lines made M = 1 1.25x, M =
    // 16 1.11x, M = 64 1.16x and M = 256 1.21x faster; M = 1 then reads at the measured streaming floor).
    const char* ahead = reinterpret_cast<const char*>(panel + pair * kPanelWidth) + kPrefetchBytes;
    _mm_prefetch(ahead, _MM_HINT_T0);
    _mm_prefetch(ahead + 64, _MM_HINT_T0);
    const __m512bh b_low = reinterpret_cast<__m512bh>(_mm512_loadu_si512(panel + pair * kPanelWidth));
    const __m512bh b_high = reinterpret_cast<__m512bh>(_mm512_loadu_si512(panel + pair * kPanelWidth + 16));
    for (int r = 0; r < kRows; ++r) {
      const __m512bh x =
          reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(a[pair * kMaxTileRows + r])));
      low[r] = _mm512_dpbf16_ps(low[r], x, b_low);
      high[r] = _mm512_dpbf16_ps(high[r], x, b_high);
    }
  }
  for (int r = 0; r < kRows; ++r) {
    _mm512_storeu_ps(c + r * kPanelWidth, low[r]);
    _mm512_storeu_ps(c + r * kPanelWidth + 16, high[r]);
  }
}

template <int... kRows>
void dispatch(std::integer_sequence<int, kRows...>, int rows, const std::uint32_t* a,
              const std::uint32_t* panel, std::int64_t depth, float* c, bool accumulate) {
  ((rows == kRows + 1 ? dot_rows<kRows + 1>(a, panel, depth, c, accumulate) : void()), ...);
}

void dot_panel(const void* a, int rows, const std::uint32_t* panel, std::int64_t depth, float* c,
               bool accumulate) {
  dispatch(std::make_integer_sequence<int, kMaxTileRows>{}, rows, static_cast<const std::uint32_t*>(a), panel,
           depth, c, accumulate);
}

// Activation straight into GEMM2's packed bf16-pair tile: pair q of row r at out[q * kMaxTileRows + r].
void dot_activation(const float* tile, int rows, void* out_tile, bool silu) {
  auto* out = static_cast<std::uint32_t*>(out_tile);
  const __m512i pair_index = _mm512_mullo_epi32(
      _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32(kMaxTileRows));
  for (int r = 0; r < rows; ++r) {
    const __m512 values = activate_row(tile + r * kPanelWidth, silu);
    // Round to bf16 (nearest even) and pack neighbours: 16 floats -> 8 uint32 pairs.
    const __m256i halves = reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(values));
    const __m512i pairs = _mm512_castsi256_si512(halves);
    _mm512_mask_i32scatter_epi32(out, 0x00ff, _mm512_add_epi32(pair_index, _mm512_set1_epi32(r)), pairs, 4);
  }
}

}  // namespace

PanelKernelInfo avx512_bf16_dot_kernel() {
  return {PanelLayout::pairs,           dot_panel,    dot_activation,
          avx512_accumulate_epilogue(), kMaxTileRows, "avx512_bf16"};
}

}  // namespace fusedmoe::prepacked
