// The deterministic sum over top-k of the weighted per-(token, slot) rows GEMM2 writes: for 8 columns of one
// token, in slot order, in fp32, over the slots whose expert is local (zeros for a token with none), rounded
// once to bf16. The reduce kernel (reduce_and_convert.cuh) runs it for every token; at decode, GEMM2's last
// block of each column block runs it for that block's columns instead (the fold, sm80_bf16_grouped_gemm.cuh):
// one function, so the same bits either way.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace fusedmoe::cuda_fused {

struct ReduceParams {
  const __nv_bfloat16* rows;  // [M * k, pitch]: weighted expert outputs per (token, slot)
  std::int64_t pitch;         // multiple of 8
  const std::int32_t* topk_ids;
  const std::int32_t* expert_map;  // or nullptr
  int num_experts;
  int num_local_experts;
  int top_k;
  std::int64_t num_tokens;
  std::int64_t hidden;  // H
  __nv_bfloat16* out;   // [M, H]
  bool vector_store;    // H % 8 == 0 and out 16-byte aligned
};

// out[token, column .. column + 8) (column < H, a multiple of 8). The rows are read through the L2 only: in
// the fold, other blocks of the same grid wrote them.
__device__ __forceinline__ void sum_topk_chunk(const ReduceParams& params, std::int64_t token,
                                               std::int64_t column) {
  // Slots in groups of kGroup: every id, then every row of the group is requested before any is summed, so
  // a decode batch (one block, a few rows) waits for two memory latencies per group instead of two per slot.
  // The sum stays in slot order.
  constexpr int kGroup = 8;
  float sum[8] = {};
  for (int slot0 = 0; slot0 < params.top_k; slot0 += kGroup) {
    bool local[kGroup];
#pragma unroll
    for (int j = 0; j < kGroup; ++j) {
      local[j] = false;
      if (slot0 + j >= params.top_k) continue;
      const std::int32_t id = params.topk_ids[token * params.top_k + slot0 + j];
      if (id < 0 || id >= params.num_experts) continue;
      const std::int32_t expert = params.expert_map != nullptr ? params.expert_map[id] : id;
      local[j] = expert >= 0 && expert < params.num_local_experts;
    }
    uint4 packed[kGroup];
#pragma unroll
    for (int j = 0; j < kGroup; ++j) {
      if (local[j]) {
        packed[j] = __ldcg(reinterpret_cast<const uint4*>(
            params.rows + (token * params.top_k + slot0 + j) * params.pitch + column));
      }
    }
#pragma unroll
    for (int j = 0; j < kGroup; ++j) {
      if (!local[j]) continue;
      const auto* values = reinterpret_cast<const __nv_bfloat162*>(&packed[j]);
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const float2 pair_values = __bfloat1622float2(values[q]);
        sum[2 * q] = __fadd_rn(sum[2 * q], pair_values.x);
        sum[2 * q + 1] = __fadd_rn(sum[2 * q + 1], pair_values.y);
      }
    }
  }
  __nv_bfloat16* out = params.out + token * params.hidden + column;
  if (params.vector_store) {
    uint4 packed;
    auto* values = reinterpret_cast<__nv_bfloat162*>(&packed);
#pragma unroll
    for (int j = 0; j < 4; ++j) values[j] = __floats2bfloat162_rn(sum[2 * j], sum[2 * j + 1]);
    *reinterpret_cast<uint4*>(out) = packed;
  } else {
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      if (column + j < params.hidden) out[j] = __float2bfloat16_rn(sum[j]);
    }
  }
}

// Columns [n0, n0 + width) of every token (width a multiple of 8), spread over the calling block's threads.
__device__ __forceinline__ void sum_topk_columns(const ReduceParams& params, std::int64_t n0, int width) {
  const int chunks = width / 8;
  for (std::int64_t index = threadIdx.x; index < params.num_tokens * chunks; index += blockDim.x) {
    const std::int64_t column = n0 + (index % chunks) * 8;
    if (column < params.hidden) sum_topk_chunk(params, index / chunks, column);
  }
}

}  // namespace fusedmoe::cuda_fused
