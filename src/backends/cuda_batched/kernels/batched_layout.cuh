// cuda_batched's own kernels: the steps around cuda_fused's grouped GEMMs that turn the batched format
// ([E_local, capacity, H] slabs, per-expert counts on the device) into what those GEMMs read.
//   align:    sorted ids and per-block experts in a fixed layout: expert e owns the blocks
//             [e * blocks_per_expert, (e + 1) * blocks_per_expert); its first `count` rows name its slots
//             e * capacity + i, the rest are -1 (padding), and blocks with no valid row get expert -1. No
//             scan and nothing read back: the layout depends only on capacity, E_local and block_m, so the
//             GEMM grids are fixed on the host (CUDA-graph capturable). It also writes the weight 1 GEMM2
//             multiplies each valid slot's row by (the batched format returns unweighted rows).
//   pad:      valid rows whose length is no 16-byte multiple, copied into a zero-padded pitched copy
//             (cp.async moves 16-byte chunks);
//   copy_out: valid rows of the pitched GEMM2 output into expert_out when H is odd (GEMM2 stores pairs of
//             bf16, which would straddle rows of odd length).
// Every count is clamped to [0, capacity] before use: a count outside it never reads or writes out of the
// slabs (negative counts act as 0, larger ones as capacity).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace fusedmoe::cuda_batched {

// Rows of `expert` that hold tokens: its count clamped to [0, capacity].
__device__ __forceinline__ std::int64_t valid_rows(const std::int32_t* counts, std::int64_t expert,
                                                   std::int64_t capacity) {
  const std::int64_t count = counts[expert];
  return count < 0 ? 0 : (count > capacity ? capacity : count);
}

struct BatchedAlignParams {
  const std::int32_t* counts;  // [E_local] on the device
  std::int64_t num_local_experts;
  std::int64_t capacity;
  int block_m;
  std::int64_t blocks_per_expert;  // ceil(capacity / block_m)
  std::int32_t* sorted_ids;        // [E_local * blocks_per_expert * block_m]
  std::int32_t* block_expert;      // [E_local * blocks_per_expert]
  float* unit_weights;             // [E_local * capacity]: 1 at every valid slot
};

// One thread per sorted row (grid-stride). The thread of a block's first row also writes the block's expert:
// the block is used exactly when its first row is valid.
__global__ void batched_align_kernel(BatchedAlignParams params) {
  const std::int64_t rows_per_expert = params.blocks_per_expert * params.block_m;
  const std::int64_t total = params.num_local_experts * rows_per_expert;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; row < total;
       row += stride) {
    const std::int64_t expert = row / rows_per_expert, index = row % rows_per_expert;
    const bool valid = index < valid_rows(params.counts, expert, params.capacity);
    const std::int64_t slot = expert * params.capacity + index;  // < E_local * capacity <= INT32_MAX
    params.sorted_ids[row] = valid ? static_cast<std::int32_t>(slot) : -1;
    if (valid) params.unit_weights[slot] = 1.0f;
    if (index % params.block_m == 0) {
      params.block_expert[row / params.block_m] = valid ? static_cast<std::int32_t>(expert) : -1;
    }
  }
}

// One block per slot of the slabs; rows past their expert's count are skipped (never read).
__global__ void batched_pad_rows_kernel(const __nv_bfloat16* hidden, const std::int32_t* counts,
                                        std::int64_t capacity, std::int64_t columns, __nv_bfloat16* padded,
                                        std::int64_t pitch) {
  const std::int64_t slot = blockIdx.x;
  if (slot % capacity >= valid_rows(counts, slot / capacity, capacity)) return;
  const __nv_bfloat16* in = hidden + slot * columns;
  __nv_bfloat16* out = padded + slot * pitch;
  for (std::int64_t column = threadIdx.x; column < pitch; column += blockDim.x) {
    out[column] = column < columns ? in[column] : __float2bfloat16_rn(0.0f);
  }
}

// One block per slot: valid rows of the pitched GEMM2 output into expert_out [E_local * capacity, columns].
__global__ void batched_copy_out_kernel(const __nv_bfloat16* rows, std::int64_t pitch,
                                        const std::int32_t* counts, std::int64_t capacity,
                                        std::int64_t columns, __nv_bfloat16* out) {
  const std::int64_t slot = blockIdx.x;
  if (slot % capacity >= valid_rows(counts, slot / capacity, capacity)) return;
  const __nv_bfloat16* in = rows + slot * pitch;
  __nv_bfloat16* destination = out + slot * columns;
  for (std::int64_t column = threadIdx.x; column < columns; column += blockDim.x) {
    destination[column] = in[column];
  }
}

}  // namespace fusedmoe::cuda_batched
