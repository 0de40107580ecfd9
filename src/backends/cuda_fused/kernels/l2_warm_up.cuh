// Decode's L2 warm-up for the mma.sync GEMM1 (sm_90+): the blocks of a dependent-launched GEMM1 start while
// the align step still sorts, and wait for it before reading anything it writes. Meanwhile the DRAM is idle.
// Each block finds its expert from the top-k ids themselves (complete before the align started) and asks the
// L2 for the first k-panels of its weight rows with bulk prefetches, so its first k-tiles hit the L2 once
// the wait returns. A hint only: a wrong guess costs bandwidth, never a result. Spread over GEMM1's blocks
// (each SM's bulk engine takes its own share): issued from the align's one block, 8 MB of prefetches held
// that block for 30 us (bench/results/2026-11-27-h100-session9.md).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "backends/cuda_fused/kernels/launch.hpp"
#include "backends/cuda_fused/kernels/weight_panels.cuh"

namespace fusedmoe::cuda_fused {

#if defined(__CUDA_ARCH__)

// The local expert of row block `row_block` when every routed local expert owns exactly one row block (M <=
// block_m and distinct ids within a token; at most 32 pairs): the row_block-th smallest distinct one, -1
// when there is none. With a token's ids repeated, an expert may own two row blocks and the guess is off by
// some: the prefetch is then mis-aimed, still within the weights. Warp 0 of the block calls it (each lane
// reads one pair; all 32 lanes take part).
__device__ __forceinline__ int warm_up_expert(const L2WarmUp& warm, int row_block) {
  const int lane = threadIdx.x % 32;
  int expert = -1;
  if (lane < warm.num_pairs) {
    const std::int32_t id = warm.topk_ids[lane];
    if (id >= 0 && id < warm.num_experts) {
      const std::int32_t local = warm.expert_map != nullptr ? warm.expert_map[id] : id;
      if (local >= 0 && local < warm.num_local_experts) expert = local;
    }
  }
  const unsigned same = __match_any_sync(0xffffffffu, expert);
  const bool first = expert >= 0 && __ffs(same) - 1 == lane;  // one lane per distinct expert
  int rank = 0;                                               // distinct experts below this lane's
  for (int other = 0; other < 32; ++other) {
    const int other_expert = __shfl_sync(0xffffffffu, expert, other);
    const bool other_first = __shfl_sync(0xffffffffu, first, other);
    rank += other_first && other_expert < expert;
  }
  const unsigned owner = __ballot_sync(0xffffffffu, first && rank == row_block);
  return owner != 0 ? __shfl_sync(0xffffffffu, expert, __ffs(owner) - 1) : -1;
}

// Requests the first warm.panels k-panels of rows n0 .. n0 + rows - 1 of the block's expert's converted
// weights (weights + expert * expert_stride; panel_stride elements apart) into the L2. Warp 0 only.
__device__ __forceinline__ void warm_up_weights(const L2WarmUp& warm, const __nv_bfloat16* weights,
                                                std::int64_t expert_stride, std::int64_t panel_stride,
                                                std::int64_t n0, int rows) {
#if __CUDA_ARCH__ >= 900
  const int expert = warm_up_expert(warm, static_cast<int>(blockIdx.x));
  const int lane = threadIdx.x % 32;
  if (expert < 0 || lane >= warm.panels) return;
  const __nv_bfloat16* panel =
      weights + expert * expert_stride + panel_offset(n0, 0, panel_stride) + lane * panel_stride;
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(panel),
               "r"(static_cast<unsigned>(rows * kPanelDepth * 2))
               : "memory");
#else
  (void)warm, (void)weights, (void)expert_stride, (void)panel_stride, (void)n0, (void)rows;
#endif
}

#endif  // __CUDA_ARCH__

}  // namespace fusedmoe::cuda_fused
