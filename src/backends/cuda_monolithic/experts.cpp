// cuda_monolithic's forward: the GPU router writes the top-k ids and weights into the workspace, then
// cuda_fused's kernels run from them (the streaming pair at small M, the tiled path beyond), all on the
// caller's stream.
#include "backends/cuda_monolithic/experts.hpp"

#include "backends/cuda_common/cuda_check.hpp"
#include "backends/cuda_common/device_ops.hpp"
#include "backends/cuda_fused/kernels/launch.hpp"
#include "core/check.hpp"
#include "fusedmoe/router.hpp"

namespace fusedmoe::cuda_monolithic {

bool takes_low_latency_path(const MoeConfig& config, std::int64_t num_tokens) {
  return cuda_fused::stream_path_fits(
      num_tokens, config.routing.top_k, config.num_local_experts(),
      cuda::device_attributes(config.device.index).shared_memory_per_block_optin);
}

CudaMonolithicExperts::CudaMonolithicExperts(const MoeConfig& config)
    : config_(config), experts_(config, cuda_fused::ForwardChoice{.stream = true, .tile = std::nullopt}) {}

std::size_t CudaMonolithicExperts::workspace_bytes(std::int64_t num_tokens) const {
  const std::int64_t pairs = num_tokens * config_.routing.top_k;
  std::size_t bytes =
      WorkspaceArena::bytes_for(DType::int32, pairs) + WorkspaceArena::bytes_for(DType::fp32, pairs);
  if (applies_weight_on_input(config_.routing.recipe)) {
    bytes += WorkspaceArena::bytes_for(config_.act_dtype, num_tokens * config_.hidden_size) +
             WorkspaceArena::bytes_for(DType::fp32, pairs);
  }
  return bytes + experts_.workspace_bytes(standard_problem(num_tokens, config_));
}

void CudaMonolithicExperts::apply(const TensorView& hidden, const TensorView& router_logits,
                                  const TensorView& correction_bias, const ExpertWeights& weights,
                                  const TensorView& out, WorkspaceArena& workspace,
                                  const ExecContext& context) {
  const std::int64_t num_tokens = hidden.size(0);
  if (num_tokens == 0) return;
  FUSEDMOE_ASSERT(hidden.device().is_cuda() && router_logits.device() == hidden.device() &&
                  out.device() == hidden.device());
  const std::int64_t top_k = config_.routing.top_k;
  const TensorView ids = workspace.take(DType::int32, {num_tokens, top_k});
  const TensorView routing_weights = workspace.take(DType::fp32, {num_tokens, top_k});
  // The public router checks shapes and the bias on the host, then launches one kernel on the stream.
  route(router_logits, config_.routing, config_.routing.use_correction_bias ? correction_bias : TensorView{},
        ids, routing_weights, context);

  DispatchedTokens dispatched;  // standard format, identity expert map
  dispatched.hidden = hidden;
  dispatched.topk_ids = ids;
  dispatched.topk_weights = routing_weights;
  if (applies_weight_on_input(config_.routing.recipe)) {
    // Llama-4: the routing weight scales the input (rounded to bf16, as MoeKernel does for modular
    // Experts); the experts then see weight 1. One more launch.
    dispatched.hidden = workspace.take(config_.act_dtype, {num_tokens, config_.hidden_size});
    dispatched.topk_weights = workspace.take(DType::fp32, {num_tokens, top_k});
    cuda::scale_by_routing_weight(hidden, routing_weights, dispatched.hidden, dispatched.topk_weights,
                                  context);
  }
  experts_.apply(dispatched, weights, out, workspace, context);
}

}  // namespace fusedmoe::cuda_monolithic
