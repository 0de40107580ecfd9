// The micro-kernel contract every ISA implements (one translation unit per ISA, own -m flags).
#pragma once

#include <cstdint>

namespace fusedmoe::prepacked {

inline constexpr int kPanelWidth = 32;  // output columns of one packed panel

// How a panel (and the A tiles it multiplies) is laid out:
// widen: fp32 A tiles [K][rows]; bf16 weights widened to fp32 by a shift and a mask, fp32 FMAs.
// pairs: bf16 A tiles [K/2][rows] of (k, k+1) pairs; the bf16 dot-product instruction (AVX512_BF16).
enum class PanelLayout { widen, pairs };
inline constexpr int kMaxTileRows = 12;
// How far ahead of the loads the panel kernels prefetch (software prefetch of every line: 4 KiB keeps a
// core's stream ahead of DRAM latency; see avx512_bf16_dot_panel.cpp for the measurement).
inline constexpr int kPrefetchBytes = 4096;

// C[r * 32 + c] (+)= sum_{k < depth} A(r, k) * B(k, c) for r < rows (<= the kernel's max_rows). A is a packed
// row tile, k-major so the broadcasts of one k are adjacent: widen: fp32 a[k * max_rows + r]; pairs: uint32
// bf16 pairs a[(k / 2) * max_rows + r] (depth even). B is a packed panel (see README.md).
using PanelKernel = void (*)(const void* a, int rows, const std::uint32_t* panel, std::int64_t depth,
                             float* c, bool accumulate);

// GEMM1 epilogue: h(r, j) = act(tile[r * 32 + j]) * tile[r * 32 + 16 + j], j < 16 (act: SiLU or GELU),
// written straight into GEMM2's packed A tile at column offset 0 of `out` (widen: fp32 out[j * max_rows + r];
// pairs: bf16 pairs, uint32 out[(j / 2) * max_rows + r]).
using ActivationEpilogue = void (*)(const float* tile, int rows, void* out, bool silu);
// GEMM2 epilogue: destination[r][j] += weight[r] * tile[r * 32 + j], j < 32.
using AccumulateEpilogue = void (*)(const float* tile, int rows, const float* weight,
                                    float* const* destination);

struct PanelKernelInfo {
  PanelLayout layout = PanelLayout::widen;
  PanelKernel kernel = nullptr;
  ActivationEpilogue activation = nullptr;
  AccumulateEpilogue accumulate = nullptr;
  int max_rows = 1;
  const char* isa = "";
};

}  // namespace fusedmoe::prepacked
