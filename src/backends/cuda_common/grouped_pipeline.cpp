// The steps the library grouped-GEMM backends share around their GEMMs (see grouped_pipeline.hpp).
#include "backends/cuda_common/grouped_pipeline.hpp"

#include "backends/cuda_common/cuda_check.hpp"
#include "backends/cuda_common/kernels/grouped_gemm_ops.hpp"
#include "core/check.hpp"
#include "core/tensor_checks.hpp"

namespace fusedmoe::cuda {

Support grouped_pipeline_supports(const MoeConfig& config, const Platform& platform,
                                  ActivationFormat format) {
  if (!config.device.is_cuda())
    return Support::no("runs on CUDA; config device is " + to_string(config.device));
  if (!platform.cuda.available) return Support::no("no CUDA device: " + platform.cuda.reason);
  if (config.weight_dtype != DType::bf16) {
    return Support::no(str_cat("needs bf16 weights; weight_dtype is ", to_string(config.weight_dtype)));
  }
  if (config.act_dtype != DType::bf16) {
    return Support::no(str_cat("needs bf16 activations; act_dtype is ", to_string(config.act_dtype)));
  }
  if (config.activation != Activation::silu && config.activation != Activation::gelu) {
    return Support::no(str_cat("supports silu and gelu, got ", to_string(config.activation)));
  }
  // Expert parallelism: allgather / all2all deliver the standard format with the expert map, which the
  // counting sort honours; batched dispatches are refused below.
  if (format != ActivationFormat::standard) {
    return Support::no(str_cat("consumes the standard format; the dispatch delivers ", to_string(format)));
  }
  return Support::yes();
}

CanonicalDeviceWeights copy_canonical_weights(std::string_view component, const Tensor& w13, const Tensor& w2,
                                              const MoeConfig& config) {
  FUSEDMOE_CHECK(config.device.is_cuda(), "[", component,
                 "] converts weights for a CUDA device; config device is ", to_string(config.device));
  const std::int64_t experts = config.num_local_experts(), hidden = config.hidden_size,
                     intermediate = config.intermediate_size;
  check_dtype(component, "w13", w13, {DType::bf16});
  check_dtype(component, "w2", w2, {DType::bf16});
  check_shape(component, "w13", w13, {experts, 2 * intermediate, hidden});
  check_shape(component, "w2", w2, {experts, hidden, intermediate});
  for (const auto& [name, tensor] : {std::pair<const char*, const Tensor&>{"w13", w13}, {"w2", w2}}) {
    FUSEDMOE_CHECK(tensor.device().is_cpu() || tensor.device() == config.device, "[", component, "] ", name,
                   ": expected the CPU or ", to_string(config.device), ", got ", tensor.describe());
  }
  DeviceGuard guard(config.device.index);
  CanonicalDeviceWeights copied;
  copied.w13 = Tensor::empty(DType::bf16, {experts, 2 * intermediate, hidden}, config.device);
  copied.w2 = Tensor::empty(DType::bf16, {experts, hidden, intermediate}, config.device);
  copy_tensor(w13, copied.w13);
  copy_tensor(w2, copied.w2);
  synchronize(nullptr);  // copied before any stream of the caller's reads them
  return copied;
}

std::size_t grouped_buffers_bytes(const ExpertsProblem& problem) {
  const std::int64_t pairs = problem.num_tokens * problem.top_k, experts = problem.num_local_experts;
  const std::int64_t hidden = problem.hidden_size, intermediate = problem.intermediate_size;
  return WorkspaceArena::bytes_for(DType::int32, sort_tiles(pairs) * experts) +  // tile counts / cursors
         WorkspaceArena::bytes_for(DType::int64, experts + 1) +                  // offsets
         2 * WorkspaceArena::bytes_for(DType::int32, pairs) +                    // sorted pairs, pair rows
         WorkspaceArena::bytes_for(DType::bf16, pairs * hidden) +                // a_sorted, then c2
         WorkspaceArena::bytes_for(DType::bf16, pairs * 2 * intermediate) +      // c1
         WorkspaceArena::bytes_for(DType::bf16, pairs * intermediate);           // intermediate
}

GroupedBuffers take_grouped_buffers(WorkspaceArena& workspace, std::int64_t num_tokens, int top_k,
                                    std::int64_t num_local_experts, std::int64_t hidden_size,
                                    std::int64_t intermediate_size) {
  GroupedBuffers buffers;
  buffers.num_tokens = num_tokens;
  buffers.top_k = top_k;
  buffers.num_pairs = num_tokens * top_k;
  const std::int64_t pairs = buffers.num_pairs;
  buffers.tile_counts =
      workspace.take(DType::int32, {sort_tiles(pairs) * num_local_experts}).data_as<std::int32_t>();
  buffers.offsets = workspace.take(DType::int64, {num_local_experts + 1}).data_as<std::int64_t>();
  buffers.sorted_pairs = workspace.take(DType::int32, {pairs}).data_as<std::int32_t>();
  buffers.pair_row = workspace.take(DType::int32, {pairs}).data_as<std::int32_t>();
  buffers.a_sorted = workspace.take(DType::bf16, {pairs * hidden_size}).data();
  buffers.c1 = workspace.take(DType::bf16, {pairs * 2 * intermediate_size}).data();
  buffers.intermediate = workspace.take(DType::bf16, {pairs * intermediate_size}).data();
  buffers.c2 = buffers.a_sorted;
  return buffers;
}

void group_rows_by_expert(const DispatchedTokens& dispatched, const GroupedBuffers& buffers, int num_experts,
                          int num_local_experts, StreamHandle stream) {
  FUSEDMOE_CHECK(buffers.num_pairs <= INT32_MAX, "[cuda grouped] M * k = ", buffers.num_pairs,
                 " (token, slot) pairs in one call: expected at most 2^31 - 1 (lower max_chunk_tokens)");
  const auto* map =
      dispatched.expert_map.defined() ? dispatched.expert_map.data_as<const std::int32_t>() : nullptr;
  sort_pairs_by_expert(SortPairs{.topk_ids = dispatched.topk_ids.data_as<const std::int32_t>(),
                                 .num_pairs = buffers.num_pairs,
                                 .expert_map = map,
                                 .num_experts = num_experts,
                                 .num_local_experts = num_local_experts,
                                 .tile_counts = buffers.tile_counts,
                                 .offsets = buffers.offsets,
                                 .sorted_pairs = buffers.sorted_pairs,
                                 .pair_row = buffers.pair_row},
                       stream);
  gather_rows(dispatched.hidden.data(), dispatched.hidden.size(1), buffers.top_k, buffers.sorted_pairs,
              buffers.offsets, num_local_experts, buffers.num_pairs, buffers.a_sorted, stream);
}

void apply_gated_activation(const GroupedBuffers& buffers, std::int64_t intermediate_size,
                            int num_local_experts, Activation activation, StreamHandle stream) {
  gated_activation(buffers.c1, intermediate_size, buffers.offsets, num_local_experts, buffers.num_pairs,
                   activation == Activation::silu ? 0 : 1, buffers.intermediate, stream);
}

void reduce_to_tokens(const DispatchedTokens& dispatched, const GroupedBuffers& buffers,
                      std::int64_t hidden_size, const TensorView& expert_out, StreamHandle stream) {
  reduce_pairs(buffers.c2, buffers.pair_row, dispatched.topk_weights.data_as<const float>(),
               buffers.num_tokens, buffers.top_k, hidden_size, expert_out.data(), stream);
}

}  // namespace fusedmoe::cuda
