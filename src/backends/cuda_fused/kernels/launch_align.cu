// Host side of the align step: one block, or zero the counts, then count + scan and scatter on the stream.
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
                           .max_blocks = args.max_blocks,
                           .ticket = reinterpret_cast<std::uint32_t*>(args.counts + args.num_local_experts),
                           .zero_words = args.zero_words,
                           .zero_word_count = args.zero_words != nullptr ? args.zero_word_count : 0,
                           .pair_positions = args.pair_positions,
                           .block_runs = args.block_runs,
                           .parity_order = args.parity_order};
  const bool shared_bins = args.num_local_experts <= kMaxSharedBins;
  const std::size_t bin_bytes =
      shared_bins ? static_cast<std::size_t>(args.num_local_experts) * sizeof(int) : 0;
  if (args.single_block && args.num_pairs <= kSingleBlockMaxPairs && shared_bins) {
    align_single_block_kernel<kSingleBlockThreads><<<1, kSingleBlockThreads, bin_bytes, stream>>>(params);
    FUSEDMOE_CUDA_CHECK_LAUNCH();
    return;
  }
  // The counts and the ticket after them.
  FUSEDMOE_CUDA_CHECK(cudaMemsetAsync(
      args.counts, 0, static_cast<std::size_t>(args.num_local_experts + 1) * sizeof(std::int32_t), stream));
  // A few pairs per thread: the shared bins then absorb most of the atomics.
  align_count_scan_kernel<<<grid_for(args.num_pairs, kScanThreads * 4, 1024), kScanThreads, bin_bytes,
                            stream>>>(params, shared_bins);
  FUSEDMOE_CUDA_CHECK_LAUNCH();
  const int pairs_per_thread = args.num_pairs <= kScatterOnePairPerThreadMax ? 1 : kScatterMaxPairsPerThread;
  align_scatter_kernel<<<grid_for(args.num_pairs, kScatterThreads * pairs_per_thread, INT32_MAX),
                         kScatterThreads, bin_bytes, stream>>>(params, shared_bins, pairs_per_thread);
  FUSEDMOE_CUDA_CHECK_LAUNCH();
}

}  // namespace fusedmoe::cuda_fused
