// cuda_fused's memory-bound kernels: the deterministic sum over top-k, the one-time weight conversion,
// and the copy that pads hidden rows to 16-byte multiples when they are not.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "backends/cuda_common/kernels/grid_dependency.cuh"
#include "backends/cuda_fused/kernels/weight_panels.cuh"

namespace fusedmoe::cuda_fused {

struct ReduceParams {
  // Weighted expert outputs: [M * k, pitch], the pair's row; or, with pair_positions, the sorted row
  // pair_positions[pair] (GEMM2's rows in sorted order).
  const __nv_bfloat16* rows;
  std::int64_t pitch;  // multiple of 8
  const std::int32_t* topk_ids;
  const std::int32_t* expert_map;  // or nullptr
  int num_experts;
  int num_local_experts;
  int top_k;
  std::int64_t num_tokens;
  std::int64_t hidden;                 // H
  __nv_bfloat16* out;                  // [M, H]
  bool vector_store;                   // H % 8 == 0 and out 16-byte aligned
  const std::int32_t* pair_positions;  // or nullptr
};

// Threads per block of the reduce, and the blocks per SM its registers must allow: the reduce is bound by
// the bytes it has in flight (8 rows of 16 bytes per thread). With a flag and a 64-bit row per slot it took
// 82 registers, 2 blocks per SM, and read at 65% of the DRAM's peak; one pointer per slot fits 4 blocks
// (75%): qwen3 M=16384 193 -> 167 us, deepseek-v3 668 -> 561 us (H200,
// bench/results/2026-11-28-h200-session17.md). Persistent blocks that fetch their next group's ids while
// the rows are in flight take 78 registers (3 blocks) and read at 77-85%: qwen3 M=4096 48 -> 39 us,
// M=16384 177 -> 146 us (bench/results/2026-11-28-h200-session20.md).
inline constexpr int kReduceThreads = 256, kReduceBlocksPerSm = 3;

// Slots are summed in groups of kReduceGroup: every row of a group is requested before any is added.
inline constexpr int kReduceGroup = 8;

// The rows one thread adds for one group of slots of one work item (a token's 8 columns): each slot's row
// index (sorted or per pair), or -1 for no such slot or a non-local expert's.
struct ReduceGroup {
  std::int32_t row[kReduceGroup];
};

// Reads the group's ids and row positions (one round trip, both requested together) and resolves its rows.
__device__ inline ReduceGroup resolve_reduce_group(const ReduceParams& params, std::int64_t token,
                                                   int slot0) {
  ReduceGroup group;
#pragma unroll
  for (int j = 0; j < kReduceGroup; ++j) {
    group.row[j] = -1;
    if (slot0 + j >= params.top_k) continue;
    const std::int64_t pair = token * params.top_k + slot0 + j;
    // Requested beside the id (no extra round trip); a non-local pair's position is stale, never used.
    const std::int32_t row =
        params.pair_positions != nullptr ? params.pair_positions[pair] : static_cast<std::int32_t>(pair);
    const std::int32_t id = params.topk_ids[pair];
    if (id < 0 || id >= params.num_experts) continue;
    const std::int32_t expert = params.expert_map != nullptr ? params.expert_map[id] : id;
    if (expert >= 0 && expert < params.num_local_experts) group.row[j] = row;
  }
  return group;
}

// out[t, c..c+8) = sum over slots, in slot order, in fp32, of the rows whose expert is local; a token
// with no local expert gets zeros. One work item per 8 columns of one token; the rows are the pairs' own, or
// (pair_positions) GEMM2's sorted rows: the same values, so the same bits.
// The blocks are persistent (at most what the SMs hold) and walk the items with a grid stride. While a
// group's rows are on their way, the thread already reads the ids and positions of its next group (or its
// next item's first group), so the DRAM is never idle behind that round trip: a block per token spent about
// half its life on it.
__global__ void __launch_bounds__(kReduceThreads, kReduceBlocksPerSm)
    reduce_topk_kernel(ReduceParams params) {
  cuda::wait_for_prior_grids();  // GEMM2 wrote the rows
  const std::int64_t chunks = params.pitch / 8, items = params.num_tokens * chunks;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  std::int64_t item = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (item >= items) return;
  ReduceGroup group = resolve_reduce_group(params, item / chunks, 0);
  for (; item < items; item += stride) {
    const std::int64_t token = item / chunks, column = (item % chunks) * 8;
    float sum[8] = {};
    for (int slot0 = 0; slot0 < params.top_k; slot0 += kReduceGroup) {
      // A missing row adds +0, which changes no bit: the sum starts at +0 and is never -0.
      uint4 packed[kReduceGroup];
#pragma unroll
      for (int j = 0; j < kReduceGroup; ++j) {
        packed[j] = group.row[j] >= 0
                        ? *reinterpret_cast<const uint4*>(
                              params.rows + static_cast<std::int64_t>(group.row[j]) * params.pitch + column)
                        : make_uint4(0, 0, 0, 0);
      }
      // The next group's ids and positions, requested while these rows are in flight.
      if (slot0 + kReduceGroup < params.top_k) {
        group = resolve_reduce_group(params, token, slot0 + kReduceGroup);
      } else if (item + stride < items) {
        group = resolve_reduce_group(params, (item + stride) / chunks, 0);
      }
#pragma unroll
      for (int j = 0; j < kReduceGroup; ++j) {
        const auto* values = reinterpret_cast<const __nv_bfloat162*>(&packed[j]);
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          const float2 pair_values = __bfloat1622float2(values[q]);
          sum[2 * q] = __fadd_rn(sum[2 * q], pair_values.x);
          sum[2 * q + 1] = __fadd_rn(sum[2 * q + 1], pair_values.y);
        }
      }
    }
    if (column >= params.hidden) continue;  // never with pitch = H rounded up to 8; kept as a guard
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
}

// Canonical w13 of one expert [2I, H] (gate rows, then up rows) -> [2 I_pad, depth] in k-panels
// (weight_panels.cuh): row r holds gate column 16 (r / 32) + r % 32 when r % 32 < 16, else the matching up
// column; zeros past I and H. Walks the destination in memory order.
__global__ void convert_w13_kernel(const __nv_bfloat16* source, std::int64_t intermediate,
                                   std::int64_t hidden, __nv_bfloat16* destination,
                                   std::int64_t intermediate_padded, std::int64_t depth) {
  const std::int64_t rows = 2 * intermediate_padded, count = rows * depth;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t index = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; index < count;
       index += stride) {
    const std::int64_t within_panel = index % panel_stride(rows);
    const std::int64_t row = within_panel / kPanelDepth,
                       k = index / panel_stride(rows) * kPanelDepth + within_panel % kPanelDepth;
    const std::int64_t within = row % 32, column = (row / 32) * 16 + within % 16;
    const std::int64_t source_row = within < 16 ? column : intermediate + column;
    destination[index] =
        column < intermediate && k < hidden ? source[source_row * hidden + k] : __float2bfloat16_rn(0.0f);
  }
}

// Canonical w2 of one expert [H, I] -> [H_pad, I_pad] in k-panels, zeros past H and I.
__global__ void convert_w2_kernel(const __nv_bfloat16* source, std::int64_t hidden, std::int64_t intermediate,
                                  __nv_bfloat16* destination, std::int64_t hidden_padded,
                                  std::int64_t intermediate_padded) {
  const std::int64_t count = hidden_padded * intermediate_padded;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t index = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; index < count;
       index += stride) {
    const std::int64_t within_panel = index % panel_stride(hidden_padded);
    const std::int64_t row = within_panel / kPanelDepth,
                       k = index / panel_stride(hidden_padded) * kPanelDepth + within_panel % kPanelDepth;
    destination[index] =
        row < hidden && k < intermediate ? source[row * intermediate + k] : __float2bfloat16_rn(0.0f);
  }
}

// hidden [M, H] -> [M, pitch] with zeros in columns [H, pitch).
__global__ void pad_rows_kernel(const __nv_bfloat16* source, std::int64_t num_rows, std::int64_t columns,
                                __nv_bfloat16* destination, std::int64_t pitch) {
  const std::int64_t count = num_rows * pitch;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t index = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; index < count;
       index += stride) {
    const std::int64_t row = index / pitch, column = index % pitch;
    destination[index] = column < columns ? source[row * columns + column] : __float2bfloat16_rn(0.0f);
  }
}

}  // namespace fusedmoe::cuda_fused
