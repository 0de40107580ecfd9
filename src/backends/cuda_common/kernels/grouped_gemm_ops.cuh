// Kernels of the steps around a library grouped GEMM (see grouped_gemm_ops.hpp for the pipeline).
//
// The sort is a stable counting sort in three kernels, so the order of rows inside an expert is the pair
// order on every run (no result depends on atomics' timing):
//   count:   one block per tile of kSortTilePairs pairs: its histogram over local experts, one row per tile
//            (integer atomics in shared memory: the counts are exact whatever the order);
//   scan:    one block: per expert, the exclusive prefix of its counts over tiles (in place: each tile's
//            start inside the expert) and the expert's total; then the exclusive scan of totals = offsets;
//   scatter: one warp per tile walks its pairs 32 at a time in order; lanes with the same expert find their
//            rank with __match_any_sync, the lowest lane advances the tile's cursor.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "backends/cuda_common/kernels/block_scan.cuh"
#include "backends/cuda_common/kernels/grouped_gemm_ops.hpp"

namespace fusedmoe::cuda::grouped {

inline constexpr int kCountThreads = 256;
inline constexpr int kScanThreads = 1024;
inline constexpr int kMaxSharedBins = 12288;  // 48 KiB of int bins: the default shared memory limit

__device__ __forceinline__ int local_expert_of(const SortPairs& args, std::int64_t pair) {
  const std::int32_t id = args.topk_ids[pair];
  if (id < 0 || id >= args.num_experts) return -1;
  const std::int32_t local = args.expert_map != nullptr ? args.expert_map[id] : id;
  return local >= 0 && local < args.num_local_experts ? local : -1;
}

// tile_counts rows must be zero on entry when the bins do not fit in shared memory.
__global__ void count_tiles_kernel(SortPairs args, bool shared_bins) {
  extern __shared__ int bins[];
  const int experts = args.num_local_experts;
  const std::int64_t tile = blockIdx.x;
  const std::int64_t begin = tile * kSortTilePairs;
  const std::int64_t end = begin + kSortTilePairs < args.num_pairs ? begin + kSortTilePairs : args.num_pairs;
  std::int32_t* row = args.tile_counts + tile * experts;
  if (shared_bins) {
    for (int e = threadIdx.x; e < experts; e += blockDim.x) bins[e] = 0;
    __syncthreads();
  }
  for (std::int64_t pair = begin + threadIdx.x; pair < end; pair += blockDim.x) {
    const int local = local_expert_of(args, pair);
    if (local < 0) continue;
    atomicAdd(shared_bins ? &bins[local] : &row[local], 1);
  }
  if (shared_bins) {
    __syncthreads();
    for (int e = threadIdx.x; e < experts; e += blockDim.x) row[e] = bins[e];
  }
}

// One block of kScanThreads threads.
__global__ void scan_tiles_kernel(SortPairs args, std::int64_t num_tiles) {
  __shared__ std::int64_t warp_sums[kScanThreads / 32];
  const int thread = threadIdx.x;
  const int experts = args.num_local_experts;
  std::int64_t carry = 0;  // the rows of the experts scanned so far (the same in every thread)
  for (int base = 0; base < experts; base += kScanThreads) {
    const int expert = base + thread;
    std::int64_t total = 0;
    if (expert < experts) {
      for (std::int64_t tile = 0; tile < num_tiles; ++tile) {
        std::int32_t* count = args.tile_counts + tile * experts + expert;
        const std::int32_t here = *count;
        *count = static_cast<std::int32_t>(total);  // the tile's first row inside the expert
        total += here;
      }
    }
    std::int64_t chunk = 0;
    const std::int64_t before = cuda::block_exclusive_sum<kScanThreads>(total, warp_sums, chunk);
    if (expert < experts) args.offsets[expert] = carry + before;
    carry += chunk;
  }
  if (thread == 0) args.offsets[experts] = carry;
}

// One warp per tile.
__global__ void scatter_tiles_kernel(SortPairs args) {
  const int lane = threadIdx.x;
  const std::int64_t tile = blockIdx.x;
  const std::int64_t begin = tile * kSortTilePairs;
  const std::int64_t end = begin + kSortTilePairs < args.num_pairs ? begin + kSortTilePairs : args.num_pairs;
  std::int32_t* cursor = args.tile_counts + tile * args.num_local_experts;
  for (std::int64_t base = begin; base < end; base += 32) {
    const std::int64_t pair = base + lane;
    const int local = pair < end ? local_expert_of(args, pair) : -1;
    const unsigned same = __match_any_sync(0xffffffffu, local);
    const int rank = __popc(same & ((1u << lane) - 1u));
    std::int64_t row = -1;
    if (local >= 0) row = args.offsets[local] + cursor[local] + rank;
    __syncwarp();  // every lane has read its cursor before the group's first lane moves it
    if (local >= 0 && rank == 0) cursor[local] += __popc(same);
    __syncwarp();
    if (pair < end) {
      args.pair_row[pair] = static_cast<std::int32_t>(row);
      if (row >= 0) args.sorted_pairs[row] = static_cast<std::int32_t>(pair);
    }
  }
}

struct GatherParams {
  const __nv_bfloat16* hidden;
  std::int64_t hidden_size;
  int top_k;
  const std::int32_t* sorted_pairs;
  const std::int64_t* offsets;
  int num_local_experts;
  std::int64_t max_rows;
  __nv_bfloat16* a_sorted;
};

// One thread per 8 columns of a row; 16-byte copies when rows are 16-byte multiples (Vector).
template <bool Vector>
__global__ void gather_rows_kernel(GatherParams params) {
  const std::int64_t chunks = (params.hidden_size + 7) / 8;
  const std::int64_t index = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= params.max_rows * chunks) return;
  const std::int64_t row = index / chunks, column = (index % chunks) * 8;
  if (row >= params.offsets[params.num_local_experts]) return;
  const std::int64_t token = params.sorted_pairs[row] / params.top_k;
  const __nv_bfloat16* source = params.hidden + token * params.hidden_size + column;
  __nv_bfloat16* destination = params.a_sorted + row * params.hidden_size + column;
  if constexpr (Vector) {
    *reinterpret_cast<uint4*>(destination) = *reinterpret_cast<const uint4*>(source);
  } else {
    for (int j = 0; j < 8 && column + j < params.hidden_size; ++j) destination[j] = source[j];
  }
}

struct ActivationParams {
  const __nv_bfloat16* c1;  // [rows, 2I]
  std::int64_t intermediate_size;
  const std::int64_t* offsets;
  int num_local_experts;
  std::int64_t max_rows;
  int activation;               // 0 = SiLU, 1 = GELU (erf)
  __nv_bfloat16* intermediate;  // [rows, I]
};

__device__ __forceinline__ float activate(float gate, int activation) {
  return activation == 0 ? gate / (1.0f + expf(-gate))
                         : 0.5f * gate * (1.0f + erff(gate * 0.70710678118654752f));
}

// One thread per 8 columns of an intermediate row.
__global__ void gated_activation_kernel(ActivationParams params) {
  const std::int64_t columns = params.intermediate_size, chunks = (columns + 7) / 8;
  const std::int64_t index = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= params.max_rows * chunks) return;
  const std::int64_t row = index / chunks, column = (index % chunks) * 8;
  if (row >= params.offsets[params.num_local_experts]) return;
  const __nv_bfloat16* gate = params.c1 + row * 2 * columns + column;
  const __nv_bfloat16* up = gate + columns;
  __nv_bfloat16* out = params.intermediate + row * columns + column;
  for (int j = 0; j < 8 && column + j < columns; ++j) {
    out[j] =
        __float2bfloat16_rn(activate(__bfloat162float(gate[j]), params.activation) * __bfloat162float(up[j]));
  }
}

struct ReduceParams {
  const __nv_bfloat16* c2;  // [rows, H]
  const std::int32_t* pair_row;
  const float* topk_weights;
  std::int64_t num_tokens;
  int top_k;
  std::int64_t hidden_size;
  __nv_bfloat16* out;  // [M, H]
};

// One thread per 8 columns of a token; 16-byte loads and stores when rows are 16-byte multiples (Vector).
template <bool Vector>
__global__ void reduce_pairs_kernel(ReduceParams params) {
  const std::int64_t columns = params.hidden_size, chunks = (columns + 7) / 8;
  const std::int64_t index = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= params.num_tokens * chunks) return;
  const std::int64_t token = index / chunks, column = (index % chunks) * 8;
  float sum[8] = {};
  for (int slot = 0; slot < params.top_k; ++slot) {
    const std::int64_t pair = token * params.top_k + slot;
    const std::int32_t row = params.pair_row[pair];
    if (row < 0) continue;
    const float weight = params.topk_weights[pair];
    const __nv_bfloat16* source = params.c2 + static_cast<std::int64_t>(row) * columns + column;
    if constexpr (Vector) {
      const uint4 packed = *reinterpret_cast<const uint4*>(source);
      const auto* values = reinterpret_cast<const __nv_bfloat162*>(&packed);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float2 value = __bfloat1622float2(values[j]);
        sum[2 * j] = __fmaf_rn(weight, value.x, sum[2 * j]);
        sum[2 * j + 1] = __fmaf_rn(weight, value.y, sum[2 * j + 1]);
      }
    } else {
      for (int j = 0; j < 8 && column + j < columns; ++j) {
        sum[j] = __fmaf_rn(weight, __bfloat162float(source[j]), sum[j]);
      }
    }
  }
  __nv_bfloat16* out = params.out + token * columns + column;
  if constexpr (Vector) {
    uint4 packed;
    auto* values = reinterpret_cast<__nv_bfloat162*>(&packed);
#pragma unroll
    for (int j = 0; j < 4; ++j) values[j] = __floats2bfloat162_rn(sum[2 * j], sum[2 * j + 1]);
    *reinterpret_cast<uint4*>(out) = packed;
  } else {
    for (int j = 0; j < 8 && column + j < columns; ++j) out[j] = __float2bfloat16_rn(sum[j]);
  }
}

}  // namespace fusedmoe::cuda::grouped
