// How cuda_fused stores a converted weight matrix: an expert's [rows, depth] (depth a multiple of 64) as
// depth / 64 "k-panels", each [rows][64]. Element (row, k) sits at (k / 64) * rows * 64 + row * 64 + k % 64.
// A 64-deep slice of consecutive rows (what one pipeline stage of every tile reads, TMA box or cp.async
// chunks) is then one contiguous run of memory instead of one 128-byte piece per row, a weight row's pitch
// apart: a persistent TMA stream of deepseek-v3's weights read 3.13-3.15 TB/s this way against 3.05 in
// row-major rows (bench/micro/tma_stream.cu, bench/results/2026-11-27-h100-session7.md). The
// shared-memory image of a stage is the same in both layouts; only the global addresses differ.
#pragma once

#include <cstdint>

#include "backends/cuda_fused/kernels/tile_table.hpp"

namespace fusedmoe::cuda_fused {

inline constexpr int kPanelDepth = 64;
static_assert(kWeightKPadding % kPanelDepth == 0, "the converted depth must hold whole panels");

// Elements from one panel to the next: `rows` (the converted matrix's padded rows) times the panel depth.
__host__ __device__ __forceinline__ std::int64_t panel_stride(std::int64_t rows) {
  return rows * kPanelDepth;
}
// Offset of element (row, k) within one expert's converted matrix.
__host__ __device__ __forceinline__ std::int64_t panel_offset(std::int64_t row, std::int64_t k,
                                                              std::int64_t stride) {
  return (k / kPanelDepth) * stride + row * kPanelDepth + k % kPanelDepth;
}

}  // namespace fusedmoe::cuda_fused
