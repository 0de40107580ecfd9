// cuda_cutlass_grouped's forward: the shared sort/gather/activation/reduce steps around two CUTLASS grouped
// GEMMs, all on the caller's stream, in workspace sized beforehand. Nothing is read back: the GEMMs' problem
// sizes are written on the device from the expert offsets.
#include "backends/cuda_cutlass_grouped/experts.hpp"

#include "backends/cuda_common/cuda_check.hpp"
#include "backends/cuda_common/grouped_pipeline.hpp"
#include "backends/cuda_cutlass_grouped/kernels/sm90_grouped_gemm.hpp"
#include "core/check.hpp"

namespace fusedmoe::cuda_cutlass_grouped {

namespace {

// Per GEMM: the device argument arrays and CUTLASS's own workspace (tensor maps per SM).
std::size_t gemm_bytes(int experts, int sm_count) {
  return WorkspaceArena::bytes_for(DType::uint8,
                                   static_cast<std::int64_t>(grouped_gemm_arguments_bytes(experts))) +
         WorkspaceArena::bytes_for(
             DType::uint8, static_cast<std::int64_t>(grouped_gemm_workspace_bytes(experts, sm_count)));
}

}  // namespace

std::size_t CutlassGroupedExperts::workspace_bytes(const ExpertsProblem& problem) const {
  const int sm_count = cuda::device_attributes(config_.device.index).num_sms;
  return cuda::grouped_buffers_bytes(problem) +
         2 * gemm_bytes(static_cast<int>(problem.num_local_experts), sm_count);
}

void CutlassGroupedExperts::apply(const DispatchedTokens& dispatched, const ExpertWeights& weights,
                                  const TensorView& expert_out, WorkspaceArena& workspace,
                                  const ExecContext& context) {
  const auto* converted = dynamic_cast<const CutlassGroupedWeights*>(&weights);
  FUSEDMOE_ASSERT(converted != nullptr,
                  "backend cuda_cutlass_grouped was given weights converted by another backend");
  const TensorView& hidden = dispatched.hidden;
  const std::int64_t num_tokens = hidden.size(0);
  if (num_tokens == 0) return;
  FUSEDMOE_ASSERT(hidden.dtype() == DType::bf16 && expert_out.dtype() == DType::bf16 &&
                  hidden.device().is_cuda());
  const int top_k = static_cast<int>(dispatched.topk_ids.size(1));
  const int experts = static_cast<int>(converted->num_experts);
  const std::int64_t hidden_size = converted->hidden, intermediate = converted->intermediate;

  const int device_index = hidden.device().index;
  cuda::DeviceGuard guard(device_index);
  const int sm_count = cuda::device_attributes(device_index).num_sms;
  const cuda::GroupedBuffers buffers =
      cuda::take_grouped_buffers(workspace, num_tokens, top_k, experts, hidden_size, intermediate);
  auto take_bytes = [&](std::size_t bytes) {
    return workspace.take(DType::uint8, {static_cast<std::int64_t>(bytes)}).data();
  };
  const std::size_t arguments_bytes = grouped_gemm_arguments_bytes(experts);
  const std::size_t gemm_workspace_bytes = grouped_gemm_workspace_bytes(experts, sm_count);
  void* arguments1 = take_bytes(arguments_bytes);
  void* workspace1 = take_bytes(gemm_workspace_bytes);
  void* arguments2 = take_bytes(arguments_bytes);
  void* workspace2 = take_bytes(gemm_workspace_bytes);

  const StreamHandle stream = context.stream;
  cuda::group_rows_by_expert(dispatched, buffers, static_cast<int>(config_.num_experts), experts, stream);
  run_grouped_gemm(GroupedGemm{.num_groups = experts,
                               .offsets = buffers.offsets,
                               .a = buffers.a_sorted,
                               .b = converted->w13.data(),
                               .d = buffers.c1,
                               .n = 2 * intermediate,
                               .k = hidden_size,
                               .arguments = arguments1,
                               .workspace = workspace1,
                               .device_index = device_index,
                               .sm_count = sm_count},
                   stream);
  cuda::apply_gated_activation(buffers, intermediate, experts, config_.activation, stream);
  run_grouped_gemm(GroupedGemm{.num_groups = experts,
                               .offsets = buffers.offsets,
                               .a = buffers.intermediate,
                               .b = converted->w2.data(),
                               .d = buffers.c2,
                               .n = hidden_size,
                               .k = intermediate,
                               .arguments = arguments2,
                               .workspace = workspace2,
                               .device_index = device_index,
                               .sm_count = sm_count},
                   stream);
  cuda::reduce_to_tokens(dispatched, buffers, hidden_size, expert_out, stream);
}

}  // namespace fusedmoe::cuda_cutlass_grouped
