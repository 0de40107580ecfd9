// The align step (vLLM's moe_align_block_size, our own code): per local expert, the (token, slot) pairs
// routed to it, each expert's run padded to block_m rows, and the expert of every block_m block. Three
// kernels (or, for small batches, all three steps in one block: align_single_block_kernel), all on the
// device (no host sync), sized for the worst case:
//   count:   histogram of local experts (shared-memory bins when they fit, else global atomics);
//   scan:    one block: padded offsets (64-bit), block -> expert (-1 past the last used block), -1 in the
//            padding rows, and the counts reset to serve as fill cursors;
//   scatter: each pair lands at offset[e] + atomicAdd(cursor[e]). The order inside an expert's run varies
//            between runs, but no result depends on it: every output row is computed on its own.
// Ids outside [0, E) and experts mapped to -1 (or outside [0, E_local)) are skipped: they contribute nothing.
#pragma once

#include <cstdint>

#include "backends/cuda_common/kernels/grid_dependency.cuh"

namespace fusedmoe::cuda_fused {

struct AlignParams {
  const std::int32_t* topk_ids;    // [pairs] global ids
  std::int64_t num_pairs;          // M * k
  const std::int32_t* expert_map;  // [E] global -> local (-1: not here), or nullptr for identity
  int num_experts;
  int num_local_experts;
  int block_m;
  std::int32_t* counts;        // [E_local]: zero on entry to count; cursors after scan
  std::int64_t* offsets;       // [E_local + 1]: padded row offsets
  std::int32_t* sorted_ids;    // [max_rows]
  std::int32_t* block_expert;  // [max_blocks]
  std::int64_t max_blocks;
};

inline constexpr int kAlignThreads = 256;
inline constexpr int kScanThreads = 1024;
inline constexpr int kMaxSharedBins = 8192;  // 32 KiB of int bins

__device__ __forceinline__ int local_expert_of(const AlignParams& params, std::int64_t pair) {
  const std::int32_t id = params.topk_ids[pair];
  if (id < 0 || id >= params.num_experts) return -1;
  const std::int32_t local = params.expert_map != nullptr ? params.expert_map[id] : id;
  return local >= 0 && local < params.num_local_experts ? local : -1;
}

__global__ void align_count_kernel(AlignParams params, bool shared_bins) {
  extern __shared__ int bins[];
  if (shared_bins) {
    for (int e = threadIdx.x; e < params.num_local_experts; e += blockDim.x) bins[e] = 0;
    __syncthreads();
  }
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t pair = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       pair < params.num_pairs; pair += stride) {
    const int local = local_expert_of(params, pair);
    if (local < 0) continue;
    if (shared_bins) {
      atomicAdd(&bins[local], 1);
    } else {
      atomicAdd(&params.counts[local], 1);
    }
  }
  if (shared_bins) {
    __syncthreads();
    for (int e = threadIdx.x; e < params.num_local_experts; e += blockDim.x) {
      if (bins[e] != 0) atomicAdd(&params.counts[e], bins[e]);
    }
  }
}

// Offsets, block experts and padding from per-expert `counts` (global, or shared in the one-block
// variant); leaves `counts` zeroed to serve as fill cursors. One block of kScanThreads threads.
__device__ void align_scan(const AlignParams& params, int* counts) {
  __shared__ std::int64_t warp_sums[kScanThreads / 32];
  __shared__ std::int64_t carry;
  const int thread = threadIdx.x, lane = thread % 32, warp = thread / 32;
  const int experts = params.num_local_experts, block_m = params.block_m;
  if (thread == 0) carry = 0;
  __syncthreads();
  for (int base = 0; base < experts; base += kScanThreads) {
    const int expert = base + thread;
    const std::int64_t padded =
        expert < experts ? (static_cast<std::int64_t>(counts[expert]) + block_m - 1) / block_m * block_m : 0;
    std::int64_t inclusive = padded;
    for (int offset = 1; offset < 32; offset *= 2) {
      const std::int64_t other = __shfl_up_sync(0xffffffffu, inclusive, offset);
      if (lane >= offset) inclusive += other;
    }
    if (lane == 31) warp_sums[warp] = inclusive;
    __syncthreads();
    if (warp == 0) {
      std::int64_t sum = warp_sums[lane];
      for (int offset = 1; offset < 32; offset *= 2) {
        const std::int64_t other = __shfl_up_sync(0xffffffffu, sum, offset);
        if (lane >= offset) sum += other;
      }
      warp_sums[lane] = sum;  // inclusive over warps
    }
    __syncthreads();
    const std::int64_t before_warp = warp > 0 ? warp_sums[warp - 1] : 0;
    if (expert < experts) params.offsets[expert] = carry + before_warp + inclusive - padded;
    __syncthreads();
    if (thread == 0) carry += warp_sums[kScanThreads / 32 - 1];
    __syncthreads();
  }
  if (thread == 0) params.offsets[experts] = carry;
  __syncthreads();  // offsets are visible to the whole block from here

  const std::int64_t total = carry;
  for (std::int64_t block = thread; block < params.max_blocks; block += kScanThreads) {
    const std::int64_t row = block * block_m;
    int expert = -1;
    if (row < total) {  // the last expert whose offset is <= row (empty experts share their successor's)
      int low = 0, high = experts;  // offsets[low] <= row < offsets[high]
      while (high - low > 1) {
        const int middle = (low + high) / 2;
        if (params.offsets[middle] <= row) {
          low = middle;
        } else {
          high = middle;
        }
      }
      expert = low;
    }
    params.block_expert[block] = expert;
  }
  // Padding rows: one warp per expert, its lanes on consecutive rows (coalesced stores; a thread per expert
  // writing up to block_m - 1 rows in a row held the one-block align 13 us at qwen3-30b-a3b M=64 under ncu).
  for (int expert = warp; expert < experts; expert += kScanThreads / 32) {
    const std::int64_t end = params.offsets[expert + 1];
    for (std::int64_t row = params.offsets[expert] + counts[expert] + lane; row < end; row += 32) {
      params.sorted_ids[row] = -1;
    }
    __syncwarp();                       // every lane has read the count
    if (lane == 0) counts[expert] = 0;  // now the scatter's cursor
  }
}

__global__ void align_scan_kernel(AlignParams params) {
  align_scan(params, params.counts);
}

// Count, scan and scatter in one block of kScanThreads threads, bins and cursors in shared memory
// ([E_local] ints): one launch instead of a memset and three kernels, for small batches
// (kSingleBlockMaxPairs) at decode.
inline constexpr std::int64_t kSingleBlockMaxPairs = 8192;

__global__ void align_single_block_kernel(AlignParams params) {
  cuda::allow_dependent_grids();  // GEMM1 may launch now; it waits for this kernel before reading anything
  extern __shared__ int bins[];
  for (int e = threadIdx.x; e < params.num_local_experts; e += blockDim.x) bins[e] = 0;
  __syncthreads();
  for (std::int64_t pair = threadIdx.x; pair < params.num_pairs; pair += blockDim.x) {
    const int local = local_expert_of(params, pair);
    if (local >= 0) atomicAdd(&bins[local], 1);
  }
  __syncthreads();
  align_scan(params, bins);
  __syncthreads();  // the cursors are zero and the offsets visible
  for (std::int64_t pair = threadIdx.x; pair < params.num_pairs; pair += blockDim.x) {
    const int local = local_expert_of(params, pair);
    if (local < 0) continue;
    const std::int64_t row = params.offsets[local] + atomicAdd(&bins[local], 1);
    params.sorted_ids[row] = static_cast<std::int32_t>(pair);
  }
}

__global__ void align_scatter_kernel(AlignParams params) {
  cuda::allow_dependent_grids();  // as in align_single_block_kernel
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t pair = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       pair < params.num_pairs; pair += stride) {
    const int local = local_expert_of(params, pair);
    if (local < 0) continue;
    const std::int64_t row = params.offsets[local] + atomicAdd(&params.counts[local], 1);
    params.sorted_ids[row] = static_cast<std::int32_t>(pair);
  }
}

}  // namespace fusedmoe::cuda_fused
