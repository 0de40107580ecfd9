// The micro-kernel contract every ISA implements (one translation unit per ISA, own -m flags).
#pragma once

#include <cstdint>

namespace fusedmoe::prepacked {

inline constexpr int kPanelWidth = 32;  // output columns of one packed panel
inline constexpr int kMaxTileRows = 12;

// C[r * 32 + c] (+)= sum_{k < depth} A[k * max_rows + r] * B(k, c) for r < rows (<= the kernel's max_rows):
// A is a packed row tile (k-major, max_rows floats per k, so the broadcasts of one k are adjacent), B a packed
// panel (see README.md): depth rows of 16 uint32 lanes, 64 bytes each.
using PanelKernel = void (*)(const float* a, int rows, const std::uint32_t* panel, std::int64_t depth, float* c,
                             bool accumulate);

// GEMM1 epilogue: out[j * max_rows + r] = act(tile[r * 32 + j]) * tile[r * 32 + 16 + j], j < 16 (act: SiLU or
// GELU), i.e. straight into the packed A tile of GEMM2.
using ActivationEpilogue = void (*)(const float* tile, int rows, float* out, bool silu);
// GEMM2 epilogue: destination[r][j] += weight[r] * tile[r * 32 + j], j < 32.
using AccumulateEpilogue = void (*)(const float* tile, int rows, const float* weight, float* const* destination);

struct PanelKernelInfo {
  PanelKernel kernel = nullptr;
  ActivationEpilogue activation = nullptr;
  AccumulateEpilogue accumulate = nullptr;
  int max_rows = 1;
  const char* isa = "";
};

}  // namespace fusedmoe::prepacked
