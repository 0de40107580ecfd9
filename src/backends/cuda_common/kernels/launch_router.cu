// Host side of the GPU router: builds the parameters, sizes shared memory, launches on the stream.
#include "backends/cuda_common/cuda_check.hpp"
#include "backends/cuda_common/device_ops.hpp"
#include "backends/cuda_common/kernels/router_topk.cuh"
#include "core/check.hpp"

namespace fusedmoe::cuda {

namespace {
RouterRecipe router_recipe(RoutingRecipe recipe) {
  switch (recipe) {
    case RoutingRecipe::softmax_topk:
      return RouterRecipe::softmax_topk;
    case RoutingRecipe::softmax_topk_renorm:
      return RouterRecipe::softmax_topk_renorm;
    case RoutingRecipe::topk_softmax:
      return RouterRecipe::topk_softmax;
    case RoutingRecipe::softmax_grouped:
      return RouterRecipe::softmax_grouped;
    case RoutingRecipe::sigmoid_grouped_bias:
      return RouterRecipe::sigmoid_grouped_bias;
    case RoutingRecipe::llama4_top1_sigmoid:
      return RouterRecipe::llama4_top1_sigmoid;
  }
  throw InternalError("[router] unhandled routing recipe");
}
}  // namespace

void route(const TensorView& logits, const RoutingConfig& routing, const TensorView& correction_bias,
           const TensorView& topk_ids, const TensorView& topk_weights, const ExecContext& context) {
  const std::int64_t num_tokens = logits.size(0);
  const std::int64_t num_experts = logits.size(1);
  if (num_tokens == 0) return;
  FUSEDMOE_CHECK(num_tokens <= INT32_MAX, "[router] ", num_tokens, " tokens: the GPU router handles at most ",
                 INT32_MAX, " per call");
  const RouterSmemLayout layout =
      router_smem_layout(static_cast<int>(num_experts), routing.num_groups, routing.top_k);
  DeviceGuard guard(logits.device().index);
  const DeviceAttributes& device = device_attributes(logits.device().index);
  if (static_cast<std::size_t>(layout.bytes) > device.shared_memory_per_block_optin) {
    throw Unsupported(str_cat("[router] ", num_experts, " experts need ", layout.bytes,
                              " bytes of shared memory per token on the GPU; ", device.name, " offers ",
                              device.shared_memory_per_block_optin));
  }
  // Only ever raised (per device), so that two layers of different E routing concurrently cannot lower
  // each other's limit between the setting and the launch.
  if (layout.bytes > 48 * 1024) {
    allow_dynamic_shared_memory(reinterpret_cast<const void*>(route_kernel), layout.bytes);
  }
  const RouterParams params{
      .logits = logits.data(),
      .logits_type = element_type(logits.dtype()),
      .bias = routing.use_correction_bias ? correction_bias.data_as<const float>() : nullptr,
      .ids = topk_ids.data_as<std::int32_t>(),
      .weights = topk_weights.data_as<float>(),
      .num_experts = static_cast<int>(num_experts),
      .top_k = routing.top_k,
      .recipe = router_recipe(routing.recipe),
      .num_groups = routing.num_groups,
      .topk_group = routing.topk_group,
      .renormalize = routing.renormalize,
      .routed_scaling_factor = routing.routed_scaling_factor,
  };
  // Enough threads for one expert each up to 256; larger E loops.
  const int threads = num_experts <= 64 ? 64 : num_experts <= 128 ? 128 : 256;
  route_kernel<<<static_cast<unsigned>(num_tokens), threads, layout.bytes, stream_of(context)>>>(params);
  FUSEDMOE_CUDA_CHECK_LAUNCH();
}

}  // namespace fusedmoe::cuda
