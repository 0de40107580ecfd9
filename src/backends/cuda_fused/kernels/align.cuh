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

  // Row blocks' experts and padding rows. Warp w takes experts w, w + 32, ...: each lane first reads one
  // expert's offsets and count (one round of independent loads), then the warp walks its experts that have
  // rows, its lanes on consecutive rows and blocks (coalesced stores). Measured under ncu at qwen3-30b-a3b
  // M=64: a thread per expert writing its padding rows one after another held this one-block align 13 us, a
  // warp per expert 6.5 us; a warp walking 32 experts in a row while most warps idled, 19 us.
  constexpr int kWarps = kScanThreads / 32;
  for (int first = warp; first < experts; first += 32 * kWarps) {
    const int expert = first + lane * kWarps;
    std::int64_t begin = 0, end = 0;
    int count = 0;
    if (expert < experts) {
      begin = params.offsets[expert];
      end = params.offsets[expert + 1];
      count = counts[expert];
    }
    for (unsigned with_rows = __ballot_sync(0xffffffffu, end > begin); with_rows != 0;
         with_rows &= with_rows - 1) {
      const int owner = __ffs(with_rows) - 1;
      const std::int64_t owner_begin = __shfl_sync(0xffffffffu, begin, owner);
      const std::int64_t owner_end = __shfl_sync(0xffffffffu, end, owner);
      const int owner_count = __shfl_sync(0xffffffffu, count, owner);
      for (std::int64_t row = owner_begin + owner_count + lane; row < owner_end; row += 32) {
        params.sorted_ids[row] = -1;
      }
      for (std::int64_t block = owner_begin / block_m + lane; block < owner_end / block_m; block += 32) {
        params.block_expert[block] = first + owner * kWarps;
      }
    }
    if (expert < experts) counts[expert] = 0;  // now the scatter's cursor (only this lane read it)
  }
  for (std::int64_t block = carry / block_m + thread; block < params.max_blocks; block += kScanThreads) {
    params.block_expert[block] = -1;  // past the last used row block
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
