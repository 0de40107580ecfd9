// Host side of the token-summed GEMM2 (token_sum_gemm2.cuh).
#include "backends/cuda_common/cuda_check.hpp"
#include "backends/cuda_common/kernels/grid_dependency.cuh"
#include "backends/cuda_fused/kernels/launch.hpp"
#include "backends/cuda_fused/kernels/token_sum_gemm2.cuh"
#include "core/check.hpp"

namespace fusedmoe::cuda_fused {

bool token_sum_gemm2_fits(int top_k, std::int64_t intermediate_padded, std::size_t shared_memory_optin) {
  return top_k >= 1 && top_k <= kTokenSumMaxSlots &&
         token_sum_shared_bytes(top_k, intermediate_padded) <= static_cast<std::int64_t>(shared_memory_optin);
}

void launch_token_sum_gemm2(const TokenSumLaunch& args, StreamHandle stream_handle) {
  if (args.num_tokens == 0) return;
  FUSEDMOE_CHECK(args.top_k >= 1 && args.top_k <= kTokenSumMaxSlots,
                 "[cuda_fused] the token-summed GEMM2 takes ", "top_k 1 .. ", kTokenSumMaxSlots, ", not ",
                 args.top_k);
  FUSEDMOE_CHECK(args.hidden_padded % kTokenSumColumns == 0 && args.hidden_padded >= args.hidden &&
                     args.intermediate_padded % kPanelDepth == 0,
                 "[cuda_fused] the token-summed GEMM2 needs w2's rows padded to ", kTokenSumColumns,
                 " and its depth to ", kPanelDepth);
  const std::int64_t column_blocks = (args.hidden + kTokenSumColumns - 1) / kTokenSumColumns;
  FUSEDMOE_CHECK(args.num_tokens <= INT32_MAX && column_blocks <= 65535,
                 "[cuda_fused] token-summed GEMM2 grid [", args.num_tokens, ", ", column_blocks,
                 "] exceeds one launch");
  const std::int64_t shared_bytes = token_sum_shared_bytes(args.top_k, args.intermediate_padded);
  const auto* function = reinterpret_cast<const void*>(token_sum_gemm2_kernel);
  cuda::allow_dynamic_shared_memory(function, static_cast<int>(shared_bytes));
  const TokenSumParams params{.topk_ids = args.topk_ids,
                              .expert_map = args.expert_map,
                              .pair_positions = args.pair_positions,
                              .topk_weights = args.topk_weights,
                              .num_experts = args.num_experts,
                              .num_local_experts = args.num_local_experts,
                              .top_k = args.top_k,
                              .intermediate = static_cast<const bf16*>(args.intermediate),
                              .ldi = args.intermediate_padded,
                              .w2 = static_cast<const bf16*>(args.w2),
                              .panel_stride = panel_stride(args.hidden_padded),
                              .expert_stride = args.hidden_padded * args.intermediate_padded,
                              .out = static_cast<bf16*>(args.out),
                              .hidden = args.hidden};
  cuda::launch_dependent(token_sum_gemm2_kernel,
                         dim3(static_cast<unsigned>(args.num_tokens), static_cast<unsigned>(column_blocks)),
                         32, static_cast<std::size_t>(shared_bytes), static_cast<cudaStream_t>(stream_handle),
                         args.dependent_launch, params);
}

}  // namespace fusedmoe::cuda_fused
