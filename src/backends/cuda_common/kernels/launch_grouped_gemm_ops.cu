// Host side of the steps around a library grouped GEMM: grid sizes, vector paths, launch checks.
#include <cstdint>

#include "backends/cuda_common/cuda_check.hpp"
#include "backends/cuda_common/kernels/grouped_gemm_ops.cuh"

namespace fusedmoe::cuda {

namespace {

constexpr int kThreads = 256;

unsigned blocks_for(std::int64_t threads) {
  return static_cast<unsigned>((threads + kThreads - 1) / kThreads);
}

bool aligned16(const void* pointer) {
  return reinterpret_cast<std::uintptr_t>(pointer) % 16 == 0;
}

}  // namespace

void sort_pairs_by_expert(const SortPairs& args, StreamHandle stream_handle) {
  const auto stream = static_cast<cudaStream_t>(stream_handle);
  if (args.num_pairs == 0) return;
  const std::int64_t tiles = sort_tiles(args.num_pairs);
  const bool shared_bins = args.num_local_experts <= grouped::kMaxSharedBins;
  if (!shared_bins) {
    FUSEDMOE_CUDA_CHECK(cudaMemsetAsync(
        args.tile_counts, 0, static_cast<std::size_t>(tiles * args.num_local_experts) * sizeof(std::int32_t),
        stream));
  }
  const std::size_t bin_bytes =
      shared_bins ? static_cast<std::size_t>(args.num_local_experts) * sizeof(int) : 0;
  grouped::count_tiles_kernel<<<static_cast<unsigned>(tiles), grouped::kCountThreads, bin_bytes, stream>>>(
      args, shared_bins);
  FUSEDMOE_CUDA_CHECK_LAUNCH();
  grouped::scan_tiles_kernel<<<1, grouped::kScanThreads, 0, stream>>>(args, tiles);
  FUSEDMOE_CUDA_CHECK_LAUNCH();
  grouped::scatter_tiles_kernel<<<static_cast<unsigned>(tiles), 32, 0, stream>>>(args);
  FUSEDMOE_CUDA_CHECK_LAUNCH();
}

void gather_rows(const void* hidden, std::int64_t hidden_size, int top_k, const std::int32_t* sorted_pairs,
                 const std::int64_t* offsets, int num_local_experts, std::int64_t max_rows, void* a_sorted,
                 StreamHandle stream_handle) {
  const auto stream = static_cast<cudaStream_t>(stream_handle);
  if (max_rows == 0) return;
  const grouped::GatherParams params{.hidden = static_cast<const __nv_bfloat16*>(hidden),
                                     .hidden_size = hidden_size,
                                     .top_k = top_k,
                                     .sorted_pairs = sorted_pairs,
                                     .offsets = offsets,
                                     .num_local_experts = num_local_experts,
                                     .max_rows = max_rows,
                                     .a_sorted = static_cast<__nv_bfloat16*>(a_sorted)};
  const unsigned blocks = blocks_for(max_rows * ((hidden_size + 7) / 8));
  if (hidden_size % 8 == 0 && aligned16(hidden) && aligned16(a_sorted)) {
    grouped::gather_rows_kernel<true><<<blocks, kThreads, 0, stream>>>(params);
  } else {
    grouped::gather_rows_kernel<false><<<blocks, kThreads, 0, stream>>>(params);
  }
  FUSEDMOE_CUDA_CHECK_LAUNCH();
}

void gated_activation(const void* c1, std::int64_t intermediate_size, const std::int64_t* offsets,
                      int num_local_experts, std::int64_t max_rows, int activation, void* intermediate,
                      StreamHandle stream_handle) {
  const auto stream = static_cast<cudaStream_t>(stream_handle);
  if (max_rows == 0) return;
  const grouped::ActivationParams params{.c1 = static_cast<const __nv_bfloat16*>(c1),
                                         .intermediate_size = intermediate_size,
                                         .offsets = offsets,
                                         .num_local_experts = num_local_experts,
                                         .max_rows = max_rows,
                                         .activation = activation,
                                         .intermediate = static_cast<__nv_bfloat16*>(intermediate)};
  grouped::
      gated_activation_kernel<<<blocks_for(max_rows * ((intermediate_size + 7) / 8)), kThreads, 0, stream>>>(
          params);
  FUSEDMOE_CUDA_CHECK_LAUNCH();
}

void reduce_pairs(const void* c2, const std::int32_t* pair_row, const float* topk_weights,
                  std::int64_t num_tokens, int top_k, std::int64_t hidden_size, void* out,
                  StreamHandle stream_handle) {
  const auto stream = static_cast<cudaStream_t>(stream_handle);
  if (num_tokens == 0) return;
  const grouped::ReduceParams params{.c2 = static_cast<const __nv_bfloat16*>(c2),
                                     .pair_row = pair_row,
                                     .topk_weights = topk_weights,
                                     .num_tokens = num_tokens,
                                     .top_k = top_k,
                                     .hidden_size = hidden_size,
                                     .out = static_cast<__nv_bfloat16*>(out)};
  const unsigned blocks = blocks_for(num_tokens * ((hidden_size + 7) / 8));
  if (hidden_size % 8 == 0 && aligned16(c2) && aligned16(out)) {
    grouped::reduce_pairs_kernel<true><<<blocks, kThreads, 0, stream>>>(params);
  } else {
    grouped::reduce_pairs_kernel<false><<<blocks, kThreads, 0, stream>>>(params);
  }
  FUSEDMOE_CUDA_CHECK_LAUNCH();
}

}  // namespace fusedmoe::cuda
