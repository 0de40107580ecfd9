// Host side of the align step: zero the counts, then count, scan, scatter on the stream.
#include <algorithm>

#include "backends/cuda_common/cuda_check.hpp"
#include "backends/cuda_fused/kernels/align.cuh"
#include "backends/cuda_fused/kernels/launch.hpp"

namespace fusedmoe::cuda_fused {

namespace {
unsigned grid_for(std::int64_t count, int threads, int max_blocks) {
  return static_cast<unsigned>(std::clamp<std::int64_t>((count + threads - 1) / threads, 1, max_blocks));
}
}  // namespace

void launch_align(const AlignLaunch& args, StreamHandle stream_handle) {
  const auto stream = static_cast<cudaStream_t>(stream_handle);
  const AlignParams params{.topk_ids = args.topk_ids,
                           .num_pairs = args.num_pairs,
                           .expert_map = args.expert_map,
                           .num_experts = args.num_experts,
                           .num_local_experts = args.num_local_experts,
                           .block_m = args.block_m,
                           .counts = args.counts,
                           .offsets = args.offsets,
                           .sorted_ids = args.sorted_ids,
                           .block_expert = args.block_expert,
                           .max_blocks = args.max_blocks};
  if (args.single_block && args.num_pairs <= kSingleBlockMaxPairs &&
      args.num_local_experts <= kMaxSharedBins) {
    const std::size_t bins = static_cast<std::size_t>(args.num_local_experts) * sizeof(int);
    align_single_block_kernel<<<1, kScanThreads, bins, stream>>>(params);
    FUSEDMOE_CUDA_CHECK_LAUNCH();
    return;
  }
  FUSEDMOE_CUDA_CHECK(cudaMemsetAsync(
      args.counts, 0, static_cast<std::size_t>(args.num_local_experts) * sizeof(std::int32_t), stream));
  const bool shared_bins = args.num_local_experts <= kMaxSharedBins;
  const std::size_t bin_bytes =
      shared_bins ? static_cast<std::size_t>(args.num_local_experts) * sizeof(int) : 0;
  // A few pairs per thread: the shared bins then absorb most of the atomics.
  const unsigned blocks = grid_for(args.num_pairs, kAlignThreads * 4, 1024);
  align_count_kernel<<<blocks, kAlignThreads, bin_bytes, stream>>>(params, shared_bins);
  FUSEDMOE_CUDA_CHECK_LAUNCH();
  align_scan_kernel<<<1, kScanThreads, 0, stream>>>(params);
  FUSEDMOE_CUDA_CHECK_LAUNCH();
  align_scatter_kernel<<<grid_for(args.num_pairs, kAlignThreads, 4096), kAlignThreads, 0, stream>>>(params);
  FUSEDMOE_CUDA_CHECK_LAUNCH();
}

}  // namespace fusedmoe::cuda_fused
