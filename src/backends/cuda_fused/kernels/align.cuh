// The align step (vLLM's moe_align_block_size, our own code): per local expert, the (token, slot) pairs
// routed to it, each expert's run padded to block_m rows, and the expert of every block_m block. Two kernels
// after a memset of the counts (or, for small batches, all in one block: align_single_block_kernel), all on
// the device (no host sync), sized for the worst case:
//   count + scan: histogram of local experts (shared-memory bins when they fit, else global atomics); the
//            last block to finish (a ticket) computes the padded offsets (64-bit; the runs in ascending
//            expert id, or for the pair tiles those of an even number of blocks first: parity_order),
//            block -> expert (-1 past the last used block) and its run (BlockRun: the expert's blocks and
//            routed rows), -1 in the padding rows, and resets the counts to serve as fill cursors;
//   scatter: each block counts its pairs per expert in shared memory, reserves one range per expert with a
//            single atomic, and writes each pair at offset[e] + its range + its rank. The order inside an
//            expert's run varies between runs, but no result depends on it: every output row is computed on
//            its own.
// Ids outside [0, E) and experts mapped to -1 (or outside [0, E_local)) are skipped: they contribute nothing.
// The first kernel also zeroes words the GEMMs use (the warp-specialised tiles' counters), which saves the
// memset launch they needed before.
#pragma once

#include <cstdint>

#include "backends/cuda_common/kernels/block_scan.cuh"
#include "backends/cuda_common/kernels/grid_dependency.cuh"
#include "backends/cuda_fused/kernels/raster.hpp"

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
  std::uint32_t* ticket;      // one word after the counts: zero on entry, left at zero
  std::uint64_t* zero_words;  // zeroed by the first kernel (nullptr: none)
  std::int64_t zero_word_count;
  std::int32_t* pair_positions;  // [num_pairs]: each local pair's sorted row (nullptr: not written)
  BlockRun* block_runs;          // [max_blocks]: each block's run of its expert's blocks (nullptr: none)
  // The experts with an even number of row blocks first, then the odd ones (each set in ascending id), so
  // that the pair tile's row-block pairs straddle two experts only among the odd ones (a pair multicasts its
  // weight tile only within one expert). false: every expert in ascending id.
  bool parity_order = false;
};

inline constexpr int kScanThreads = 1024;

// Block `block` of the run [first, end) of `expert`, which has `count` routed rows.
__device__ __forceinline__ void write_block(const AlignParams& params, std::int64_t block, int expert,
                                            std::int32_t first, std::int32_t end, std::int32_t count) {
  params.block_expert[block] = expert;
  if (params.block_runs != nullptr) {
    params.block_runs[block] = BlockRun{.first = first, .end = end, .expert = expert, .rows = count};
  }
}
__device__ __forceinline__ void write_block_without_expert(const AlignParams& params, std::int64_t block) {
  params.block_expert[block] = -1;
  if (params.block_runs != nullptr) {
    params.block_runs[block] = BlockRun{.first = static_cast<std::int32_t>(block),
                                        .end = static_cast<std::int32_t>(block + 1),
                                        .expert = -1,
                                        .rows = 0};
  }
}

// rows / block_m for rows that are a multiple of block_m (a row offset's block), by a 32-bit division where
// the rows fit (always, but for batches of 2^32 padded rows or more).
__device__ __forceinline__ std::int32_t row_blocks(std::int64_t rows, int block_m) {
  if (rows <= std::int64_t{UINT32_MAX})
    return static_cast<std::int32_t>(static_cast<std::uint32_t>(rows) / static_cast<std::uint32_t>(block_m));
  return static_cast<std::int32_t>(rows / block_m);
}

inline constexpr int kMaxSharedBins = 8192;  // 32 KiB of int bins

__device__ __forceinline__ int local_expert_of(const AlignParams& params, std::int64_t pair) {
  const std::int32_t id = params.topk_ids[pair];
  if (id < 0 || id >= params.num_experts) return -1;
  const std::int32_t local = params.expert_map != nullptr ? params.expert_map[id] : id;
  return local >= 0 && local < params.num_local_experts ? local : -1;
}

// Offsets, block experts and padding from per-expert `counts` (global, or shared in the one-block
// variant); leaves `counts` zeroed to serve as fill cursors. One block of kThreads threads. In
// parity_order the scan runs twice, over the experts with an even number of blocks, then the odd ones.
template <int kThreads>
__device__ void align_scan(const AlignParams& params, int* counts) {
  __shared__ std::int64_t warp_sums[kThreads / 32];
  const int thread = threadIdx.x, lane = thread % 32, warp = thread / 32;
  const int experts = params.num_local_experts, block_m = params.block_m;
  // 32-bit divisions throughout: a 64-bit one is a long emulated sequence, and the per-expert loop below
  // runs a few of them in a row per warp on the decode path's critical chain (qwen3-30b-a3b M=1: 3% slower
  // with 64-bit ones).
  auto blocks_for = [&](int count) {  // unsigned: count + block_m - 1 may pass INT32_MAX (count <= 2^31 - 1)
    return static_cast<int>((static_cast<unsigned>(count) + block_m - 1) / static_cast<unsigned>(block_m));
  };
  auto blocks_of = [&](int expert) { return blocks_for(counts[expert]); };
  auto padded_of = [&](int expert) { return static_cast<std::int64_t>(blocks_of(expert)) * block_m; };
  std::int64_t carry = 0;  // the padded rows of the experts scanned so far (the same in every thread)
  for (int pass = 0; pass < (params.parity_order ? 2 : 1); ++pass) {
    for (int base = 0; base < experts; base += kThreads) {
      const int expert = base + thread;
      const bool mine = expert < experts && (!params.parity_order || blocks_of(expert) % 2 == pass);
      const std::int64_t padded = mine ? padded_of(expert) : 0;
      std::int64_t chunk = 0;
      const std::int64_t before = cuda::block_exclusive_sum<kThreads>(padded, warp_sums, chunk);
      if (mine) params.offsets[expert] = carry + before;
      carry += chunk;
    }
  }
  if (thread == 0) params.offsets[experts] = carry;
  __syncthreads();  // offsets are visible to the whole block from here

  // Blocks past the used ones: no expert.
  for (std::int64_t block = row_blocks(carry, block_m) + thread; block < params.max_blocks;
       block += kThreads) {
    write_block_without_expert(params, block);
  }
  // One warp per expert: its blocks' expert and run, and its padding rows, its lanes on consecutive rows
  // (coalesced stores; a thread per expert writing up to block_m - 1 rows in a row held the one-block align
  // 13 us at qwen3-30b-a3b M=64 under ncu). A warp's experts are warp, warp + 32, ...: lane j first loads
  // the count and first block of the warp's j-th expert of each 32 (then zeroes the count: the scatter's
  // cursor), so the warp's loop over them waits on one round of loads, not on one per expert (loading them
  // expert by expert held the align 1.2 us longer at qwen3-30b-a3b M=1, 4 experts per warp).
  constexpr int kWarps = kThreads / 32;
  for (int chunk = warp; chunk < experts; chunk += 32 * kWarps) {
    const int mine = chunk + lane * kWarps;
    int my_count = 0;
    std::int32_t my_first = 0;
    if (mine < experts) {
      my_count = counts[mine];
      my_first = row_blocks(params.offsets[mine], block_m);
      counts[mine] = 0;
    }
    // Only experts with rows have blocks or padding to write: the loop visits just those (at decode most
    // have none, and every iteration costs all 32 warps' issue slots: qwen3-30b-a3b M=1's loop over 4
    // experts per warp took 3.3k of the kernel's 7.5k cycles, clock64 probe, session 28).
    for (unsigned todo = __ballot_sync(0xffffffffu, my_count > 0); todo != 0; todo &= todo - 1) {
      const int j = __ffs(static_cast<int>(todo)) - 1;
      const int expert = chunk + j * kWarps;
      const int count = __shfl_sync(0xffffffffu, my_count, j);
      const std::int32_t first = __shfl_sync(0xffffffffu, my_first, j), end = first + blocks_for(count);
      for (std::int32_t block = first + lane; block < end; block += 32)
        write_block(params, block, expert, first, end, count);
      const std::int64_t end_row = static_cast<std::int64_t>(end) * block_m;
      for (std::int64_t row = static_cast<std::int64_t>(first) * block_m + count + lane; row < end_row;
           row += 32)
        params.sorted_ids[row] = -1;
    }
  }
}

__device__ __forceinline__ void zero_words(const AlignParams& params) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < params.zero_word_count; i += stride) {
    params.zero_words[i] = 0;
  }
}

// Count, then the scan by the last block to finish. kScanThreads threads per block; shared_bins: [E_local]
// ints of dynamic shared memory absorb the atomics (kMaxSharedBins).
__global__ void __launch_bounds__(kScanThreads)
    align_count_scan_kernel(AlignParams params, bool shared_bins) {
  extern __shared__ int bins[];
  __shared__ bool last;
  zero_words(params);
  if (shared_bins) {
    for (int e = threadIdx.x; e < params.num_local_experts; e += blockDim.x) bins[e] = 0;
    __syncthreads();
  }
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t pair = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       pair < params.num_pairs; pair += stride) {
    const int local = local_expert_of(params, pair);
    if (local < 0) continue;
    atomicAdd(shared_bins ? &bins[local] : &params.counts[local], 1);
  }
  if (shared_bins) {
    __syncthreads();
    for (int e = threadIdx.x; e < params.num_local_experts; e += blockDim.x) {
      if (bins[e] != 0) atomicAdd(&params.counts[e], bins[e]);
    }
  }
  // The classic last-block pattern: this block's counts are in the L2 before its ticket is.
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) last = atomicAdd(params.ticket, 1u) == gridDim.x - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();  // every other block's counts are visible from here (none were read before)
  align_scan<kScanThreads>(params, params.counts);
  if (threadIdx.x == 0) *params.ticket = 0;  // for the next call
}

// Count, scan and scatter in one block of kSingleBlockThreads threads, bins and cursors in shared memory
// ([E_local] ints): one launch instead of a memset and three kernels, for small batches
// (kSingleBlockMaxPairs) at decode.
inline constexpr std::int64_t kSingleBlockMaxPairs = 8192;

// 512 threads, not 1024: a block's every instruction costs each scheduler one issue slot per warp it holds,
// and at decode most threads have no expert or pair. Against 1024 (H200, landed A/B, 3 rounds, session 29):
// olmoe-1b-7b M=1 1.7%, qwen3-30b-a3b M=1 1.4%, mixtral-8x7b M=1 0.8% faster, olmoe M=8 0.3% slower, the
// rest at M = 1-64 level; 256 and 128 threads were 0.5-3% slower at M = 8-64 (more passes per loop).
inline constexpr int kSingleBlockThreads = 512;

template <int kThreads>
__global__ void __launch_bounds__(kThreads) align_single_block_kernel(AlignParams params) {
  cuda::allow_dependent_grids();  // GEMM1 may launch now; it waits for this kernel before reading anything
  extern __shared__ int bins[];
  zero_words(params);
  for (int e = threadIdx.x; e < params.num_local_experts; e += blockDim.x) bins[e] = 0;
  __syncthreads();
  for (std::int64_t pair = threadIdx.x; pair < params.num_pairs; pair += blockDim.x) {
    const int local = local_expert_of(params, pair);
    if (local >= 0) atomicAdd(&bins[local], 1);
  }
  __syncthreads();
  align_scan<kThreads>(params, bins);
  __syncthreads();  // the cursors are zero and the offsets visible
  for (std::int64_t pair = threadIdx.x; pair < params.num_pairs; pair += blockDim.x) {
    const int local = local_expert_of(params, pair);
    if (local < 0) continue;
    const std::int64_t row = params.offsets[local] + atomicAdd(&bins[local], 1);
    params.sorted_ids[row] = static_cast<std::int32_t>(pair);
    if (params.pair_positions != nullptr) params.pair_positions[pair] = static_cast<std::int32_t>(row);
  }
}

// kScatterThreads threads per block, pairs_per_thread (1 .. kScatterMaxPairsPerThread) pairs each.
// shared_bins ([E_local] ints of dynamic shared memory): one global atomic per block and expert reserves the
// block's range (at qwen3-30b-a3b M=16384, a global atomic per pair queued ~1000 deep on each expert's
// cursor); else one per pair. Batches up to kScatterOnePairPerThreadMax pairs take one pair per thread:
// GEMM1 waits for this kernel, so its latency counts there, not its atomics.
inline constexpr int kScatterThreads = 256;
inline constexpr int kScatterMaxPairsPerThread = 8;
inline constexpr std::int64_t kScatterOnePairPerThreadMax = 65536;

__global__ void __launch_bounds__(kScatterThreads)
    align_scatter_kernel(AlignParams params, bool shared_bins, int pairs_per_thread) {
  cuda::allow_dependent_grids();  // as in align_single_block_kernel
  extern __shared__ int bins[];   // this block's pairs per expert, then where its range starts in the run
  const std::int64_t first = static_cast<std::int64_t>(blockIdx.x) * kScatterThreads * pairs_per_thread;
  int local[kScatterMaxPairsPerThread];
  int rank[kScatterMaxPairsPerThread];
  if (shared_bins) {
    for (int e = threadIdx.x; e < params.num_local_experts; e += blockDim.x) bins[e] = 0;
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < kScatterMaxPairsPerThread; ++i) {
    const std::int64_t pair = first + i * kScatterThreads + threadIdx.x;
    local[i] = i < pairs_per_thread && pair < params.num_pairs ? local_expert_of(params, pair) : -1;
    rank[i] = 0;
    if (local[i] >= 0) rank[i] = atomicAdd(shared_bins ? &bins[local[i]] : &params.counts[local[i]], 1);
  }
  if (shared_bins) {
    __syncthreads();
    for (int e = threadIdx.x; e < params.num_local_experts; e += blockDim.x) {
      if (bins[e] != 0) bins[e] = atomicAdd(&params.counts[e], bins[e]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < kScatterMaxPairsPerThread; ++i) {
    if (local[i] < 0) continue;
    const std::int64_t row = params.offsets[local[i]] + (shared_bins ? bins[local[i]] : 0) + rank[i];
    const std::int64_t pair = first + i * kScatterThreads + threadIdx.x;
    params.sorted_ids[row] = static_cast<std::int32_t>(pair);
    if (params.pair_positions != nullptr) params.pair_positions[pair] = static_cast<std::int32_t>(row);
  }
}

}  // namespace fusedmoe::cuda_fused
