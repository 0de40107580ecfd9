// Small device kernels around the expert GEMMs: router logits, shared-expert routing, elementwise add,
// and the weight-on-input scaling. Each mirrors a CPU loop's arithmetic exactly.
#pragma once

#include <cstdint>

#include "backends/cuda_common/kernels/elements.cuh"

namespace fusedmoe::cuda {

inline constexpr int kLinearTile = 32;    // tokens x rows per block, and columns per shared-memory step
inline constexpr int kLinearSlice = 256;  // the CPU's linear_fp32 sums 256 columns, then adds to the total
inline constexpr int kLinearRowsPerPass = 8;  // blockDim.y

// out[t, r] = sum_h hidden[t, h] * weight[r, h]: per 256-column slice a product sum in column order,
// then added to the total, with no fused multiply-add: the CPU's order and roundings. Block: 32 x 8 threads
// computing 32 tokens (blockIdx.x) x 32 rows (blockIdx.y).
__global__ void linear_fp32_kernel(const void* hidden, ElementType hidden_type, std::int64_t num_tokens,
                                   std::int64_t hidden_size, const float* weight, std::int64_t rows,
                                   float* out) {
#if defined(__CUDA_ARCH__)
  __shared__ float x_tile[kLinearTile][kLinearTile + 1];
  __shared__ float w_tile[kLinearTile][kLinearTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const std::int64_t token0 = static_cast<std::int64_t>(blockIdx.x) * kLinearTile;
  const std::int64_t row0 = static_cast<std::int64_t>(blockIdx.y) * kLinearTile;
  constexpr int kPerThread = kLinearTile / kLinearRowsPerPass;
  float total[kPerThread], slice[kPerThread];
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) total[i] = slice[i] = 0.0f;
  for (std::int64_t column0 = 0; column0 < hidden_size; column0 += kLinearTile) {
    const int width =
        static_cast<int>(hidden_size - column0 < kLinearTile ? hidden_size - column0 : kLinearTile);
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      const int r = ty + kLinearRowsPerPass * i;
      const std::int64_t token = token0 + r, row = row0 + r;
      x_tile[r][tx] = token < num_tokens && tx < width
                          ? load_as_float(hidden, hidden_type, token * hidden_size + column0 + tx)
                          : 0.0f;
      w_tile[r][tx] = row < rows && tx < width ? weight[row * hidden_size + column0 + tx] : 0.0f;
    }
    __syncthreads();
    for (int c = 0; c < width; ++c) {
      const float w = w_tile[tx][c];
#pragma unroll
      for (int i = 0; i < kPerThread; ++i) {
        slice[i] = __fadd_rn(slice[i], __fmul_rn(w, x_tile[ty + kLinearRowsPerPass * i][c]));
      }
    }
    __syncthreads();
    if ((column0 + kLinearTile) % kLinearSlice == 0 || column0 + kLinearTile >= hidden_size) {
#pragma unroll
      for (int i = 0; i < kPerThread; ++i) {
        total[i] = __fadd_rn(total[i], slice[i]);
        slice[i] = 0.0f;
      }
    }
  }
  const std::int64_t row = row0 + tx;
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
    const std::int64_t token = token0 + ty + kLinearRowsPerPass * i;
    if (token < num_tokens && row < rows) out[token * rows + row] = total[i];
  }
#endif
}

// ids[t, s] = s; weights[t, s] = sigmoid(gate_logits[t]) or 1.
__global__ void shared_routing_kernel(const float* gate_logits, std::int64_t num_tokens, int count,
                                      std::int32_t* ids, float* weights) {
  const std::int64_t index = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= num_tokens * count) return;
  const std::int64_t token = index / count;
  ids[index] = static_cast<std::int32_t>(index % count);
  weights[index] = gate_logits != nullptr ? sigmoid_like_cpu(gate_logits[token]) : 1.0f;
}

__global__ void add_in_place_kernel(void* out, const void* addend, ElementType type, std::int64_t count) {
  const std::int64_t index = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= count) return;
  store_from_float(out, type, index,
                   __fadd_rn(load_as_float(out, type, index), load_as_float(addend, type, index)));
}

// scaled[t, h] = topk_weights[t, 0] * hidden[t, h]; unit_weights[t, s] = 1.
__global__ void scale_rows_kernel(const void* hidden, ElementType type, std::int64_t num_tokens,
                                  std::int64_t hidden_size, const float* topk_weights, int top_k,
                                  void* scaled, float* unit_weights) {
  const std::int64_t index = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index < num_tokens * top_k) unit_weights[index] = 1.0f;
  if (index >= num_tokens * hidden_size) return;
  const float scale = topk_weights[(index / hidden_size) * top_k];
  store_from_float(scaled, type, index, __fmul_rn(scale, load_as_float(hidden, type, index)));
}

}  // namespace fusedmoe::cuda
