// A block-wide exclusive prefix sum of one 64-bit value per thread, for the one-block scans of the align
// kernels (cuda_fused's align, the library paths' sort): warps scan by shuffles, warp 0 scans the warp sums.
#pragma once

#include <cstdint>

namespace fusedmoe::cuda {

// Every thread of a block of exactly kThreads threads (blockDim.x; a multiple of 32, at most 1024) calls it,
// with its value (0 where it has none), from code every thread of the block reaches (it has barriers);
// returns the sum of the values of the threads before it and sets `total` to the block's sum, in every
// thread. warp_sums: kThreads / 32 words of shared memory. Ends with a barrier, so the next call may reuse
// warp_sums at once.
template <int kThreads>
__device__ __forceinline__ std::int64_t block_exclusive_sum(std::int64_t value, std::int64_t* warp_sums,
                                                            std::int64_t& total) {
  static_assert(kThreads % 32 == 0 && kThreads <= 1024, "whole warps, one warp of warp sums");
  const int lane = static_cast<int>(threadIdx.x % 32), warp = static_cast<int>(threadIdx.x / 32);
  std::int64_t inclusive = value;
  for (int offset = 1; offset < 32; offset *= 2) {
    const std::int64_t other = __shfl_up_sync(0xffffffffu, inclusive, offset);
    if (lane >= offset) inclusive += other;
  }
  if (lane == 31) warp_sums[warp] = inclusive;
  __syncthreads();
  if (warp == 0) {
    std::int64_t sum = lane < kThreads / 32 ? warp_sums[lane] : 0;
    for (int offset = 1; offset < 32; offset *= 2) {
      const std::int64_t other = __shfl_up_sync(0xffffffffu, sum, offset);
      if (lane >= offset) sum += other;
    }
    if (lane < kThreads / 32) warp_sums[lane] = sum;  // inclusive over warps
  }
  __syncthreads();
  const std::int64_t before_warp = warp > 0 ? warp_sums[warp - 1] : 0;
  total = warp_sums[kThreads / 32 - 1];
  __syncthreads();  // every thread has read warp_sums
  return before_warp + inclusive - value;
}

}  // namespace fusedmoe::cuda
