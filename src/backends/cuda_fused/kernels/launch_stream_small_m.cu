// Host side of the small-M streaming path: two launches, grids from the problem's shape only (blocks
// whose slot has no tokens exit at once), so nothing is read back and a graph can capture it.
#include <algorithm>

#include "backends/cuda_common/cuda_check.hpp"
#include "backends/cuda_fused/kernels/launch.hpp"
#include "backends/cuda_fused/kernels/stream_small_m.cuh"
#include "core/check.hpp"

namespace fusedmoe::cuda_fused {

bool stream_path_fits(std::int64_t num_tokens, int top_k, std::int64_t num_local_experts,
                      std::size_t shared_memory_optin) {
  return num_tokens <= kStreamMaxTokens && num_tokens * top_k <= kStreamMaxPairs &&
         num_local_experts <= kStreamMaxLocalExperts &&
         std::max(sizeof(StreamGemm1Shared), sizeof(StreamGemm2Shared)) <= shared_memory_optin;
}

void launch_stream_experts(const SmallBatchLaunch& args, StreamHandle stream_handle) {
  const auto stream = static_cast<cudaStream_t>(stream_handle);
  const int pairs = static_cast<int>(args.num_tokens * args.top_k);
  const StreamRouting routing{.topk_ids = args.topk_ids,
                              .expert_map = args.expert_map,
                              .num_experts = args.num_experts,
                              .num_local_experts = static_cast<int>(args.num_local_experts),
                              .num_pairs = pairs,
                              .top_k = args.top_k};
  // One block per (expert, column group): walk the pairs when they are fewer than the experts (each
  // expert's first pair owns it), else walk the experts.
  const bool slots_are_pairs = pairs <= args.num_local_experts;
  const StreamGemm1Params gemm1{.routing = routing,
                                .hidden = static_cast<const bf16*>(args.hidden),
                                .lda = args.lda,
                                .a_columns = args.a_columns,
                                .w13 = static_cast<const bf16*>(args.w13),
                                .weight_depth = args.hidden_padded_k,
                                .panel_stride = panel_stride(2 * args.intermediate_padded),
                                .expert_stride = 2 * args.intermediate_padded * args.hidden_padded_k,
                                .slots_are_pairs = slots_are_pairs,
                                .intermediate = static_cast<bf16*>(args.intermediate),
                                .ldi = args.intermediate_padded,
                                .activation = args.activation};
  const dim3 grid1(static_cast<unsigned>(2 * args.intermediate_padded / 32),
                   static_cast<unsigned>(slots_are_pairs ? pairs : args.num_local_experts));
  FUSEDMOE_CHECK(grid1.y <= 65535, "[cuda_fused] streaming grid of ", grid1.y, " slots exceeds one launch");
  constexpr int kShared1 = sizeof(StreamGemm1Shared);
  cuda::allow_dynamic_shared_memory(reinterpret_cast<const void*>(stream_gemm1_kernel), kShared1);
  stream_gemm1_kernel<<<grid1, kStreamGemm1Warps * 32, kShared1, stream>>>(gemm1);
  FUSEDMOE_CUDA_CHECK_LAUNCH();

  const StreamGemm2Params gemm2{.routing = routing,
                                .intermediate = static_cast<const bf16*>(args.intermediate),
                                .ldi = args.intermediate_padded,
                                .w2 = static_cast<const bf16*>(args.w2),
                                .panel_stride = panel_stride(args.hidden_padded_n),
                                .expert_stride = args.hidden_padded_n * args.intermediate_padded,
                                .topk_weights = args.topk_weights,
                                .num_tokens = static_cast<int>(args.num_tokens),
                                .out = static_cast<bf16*>(args.out),
                                .hidden = args.hidden_size};
  constexpr int kSharedBytes = sizeof(StreamGemm2Shared);
  cuda::allow_dynamic_shared_memory(reinterpret_cast<const void*>(stream_gemm2_kernel), kSharedBytes);
  const auto blocks2 = static_cast<unsigned>((args.hidden_size + 15) / 16);
  stream_gemm2_kernel<<<blocks2, kStreamGemm2Warps * 32, kSharedBytes, stream>>>(gemm2);
  FUSEDMOE_CUDA_CHECK_LAUNCH();
}

}  // namespace fusedmoe::cuda_fused
