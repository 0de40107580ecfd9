#include <algorithm>
#include <cstring>

#include "core/check.hpp"
#include "core/threading.hpp"
#include "kernel/weight_and_reduce.hpp"
#include "parallel/prepare_finalize_local.hpp"
#if FUSEDMOE_WITH_CUDA
#include "parallel/cuda/batched_dispatch.hpp"
#endif

namespace fusedmoe {

ExpertsProblem LocalBatchedPrepareFinalize::problem(std::int64_t num_tokens, const MoeConfig& config) const {
  return {.format = ActivationFormat::batched,
          .num_tokens = num_tokens,  // the slab capacity: a token reaches each expert at most once
          .num_local_experts = num_local_experts_,
          .num_experts = config.num_experts,
          .top_k = config.routing.top_k,
          .hidden_size = config.hidden_size,
          .intermediate_size = config.intermediate_size};
}

std::size_t LocalBatchedPrepareFinalize::workspace_bytes(std::int64_t num_tokens,
                                                         const MoeConfig& config) const {
  const std::int64_t experts = num_local_experts_;
  return WorkspaceArena::bytes_for(config.act_dtype, experts * num_tokens * config.hidden_size) +  // slabs
         WorkspaceArena::bytes_for(DType::int32, experts) +                                        // counts
         WorkspaceArena::bytes_for(DType::fp32, experts * num_tokens) +               // slot weights
         WorkspaceArena::bytes_for(DType::int32, experts * num_tokens) +              // slot tokens
         WorkspaceArena::bytes_for(DType::fp32, num_tokens * config.hidden_size) +    // fp32 sums (CPU)
         WorkspaceArena::bytes_for(DType::int32, num_tokens * config.routing.top_k);  // pair -> slot (CUDA)
}

DispatchedTokens LocalBatchedPrepareFinalize::prepare(const TensorView& hidden, const TensorView& topk_ids,
                                                      const TensorView& topk_weights,
                                                      const TensorView& expert_map, WorkspaceArena& workspace,
                                                      const ExecContext& context) {
  const std::int64_t num_tokens = hidden.size(0);
  const std::int64_t hidden_size = hidden.size(1);
  const std::int64_t top_k = topk_ids.size(1);
  const std::int64_t capacity = num_tokens;
  const std::size_t row_bytes = static_cast<std::size_t>(hidden_size) * dtype_size(hidden.dtype());

  DispatchedTokens dispatched;
  dispatched.format = ActivationFormat::batched;
  dispatched.expert_map = expert_map;
  dispatched.hidden = workspace.take(hidden.dtype(), {num_local_experts_, capacity, hidden_size});
  dispatched.expert_num_tokens = workspace.take(DType::int32, {num_local_experts_});
  dispatched.topk_weights = workspace.take(DType::fp32, {num_local_experts_, capacity});
  dispatched.slot_token = workspace.take(DType::int32, {num_local_experts_, capacity});

  if (hidden.device().is_cuda()) {
    prepare_on_device(dispatched, hidden, topk_ids, topk_weights, expert_map, workspace, context);
    return dispatched;
  }
  auto* counts = dispatched.expert_num_tokens.data_as<std::int32_t>();
  auto* slot_weight = dispatched.topk_weights.data_as<float>();
  auto* slot_token = dispatched.slot_token.data_as<std::int32_t>();
  const auto* ids = topk_ids.data_as<const std::int32_t>();
  const auto* weights = topk_weights.data_as<const float>();
  const auto* map = expert_map.defined() ? expert_map.data_as<const std::int32_t>() : nullptr;
  std::fill(counts, counts + num_local_experts_, 0);
  // Tokens in ascending order within each slab: deterministic, and finalize sums in a fixed order.
  for (std::int64_t token = 0; token < num_tokens; ++token) {
    for (std::int64_t slot = 0; slot < top_k; ++slot) {
      const std::int32_t global = ids[token * top_k + slot];
      const std::int32_t local = map != nullptr ? map[global] : global;
      if (local < 0) continue;
      FUSEDMOE_CHECK(local < num_local_experts_, "[local_batched] expert ", global, " maps to local id ",
                     local, ": expected < ", num_local_experts_);
      // Checked per token, so that the message names the token that repeats the expert (a full slab would
      // name whichever later token found it full).
      for (std::int64_t earlier = 0; earlier < slot; ++earlier) {
        FUSEDMOE_CHECK(
            ids[token * top_k + earlier] != global, "[local_batched] token ", token, " lists expert ", global,
            " more than once in its top-k ids: the batched format takes each expert once per token");
      }
      FUSEDMOE_ASSERT(counts[local] < capacity, "[local_batched] a slab holds one row per token");
      const std::int64_t index = local * capacity + counts[local]++;
      slot_token[index] = static_cast<std::int32_t>(token);
      slot_weight[index] = weights[token * top_k + slot];
      std::memcpy(static_cast<char*>(dispatched.hidden.data()) + static_cast<std::size_t>(index) * row_bytes,
                  static_cast<const char*>(hidden.data()) + static_cast<std::size_t>(token) * row_bytes,
                  row_bytes);
    }
  }
  return dispatched;
}

void LocalBatchedPrepareFinalize::finalize(const DispatchedTokens& dispatched, const TensorView& expert_out,
                                           WeightAndReduce policy, const TensorView& out,
                                           WorkspaceArena& workspace, const ExecContext& context) {
  FUSEDMOE_ASSERT(policy == WeightAndReduce::by_finalize, "batched Experts must leave weighting to finalize");
  if (out.device().is_cuda()) {
    finalize_on_device(dispatched, expert_out, out, context);
    return;
  }
  const TensorView accumulator = workspace.take(DType::fp32, {out.size(0), out.size(1)});
  weight_and_reduce_batched(dispatched, expert_out, accumulator, out, resolve_num_threads(context));
}

// On a CUDA device the same slabs, built by kernels (src/parallel/cuda/batched_dispatch.hpp) without reading
// anything back: slab order, counts, slot tokens and weights are those of the host loop above. The ids are
// not checked (that would wait for the GPU): an id outside [0, E) or mapped outside [0, E_local) contributes
// nothing, and a token listing an expert twice keeps both slots while the slab has room.
void LocalBatchedPrepareFinalize::prepare_on_device(const DispatchedTokens& dispatched,
                                                    const TensorView& hidden, const TensorView& topk_ids,
                                                    const TensorView& topk_weights,
                                                    const TensorView& expert_map, WorkspaceArena& workspace,
                                                    const ExecContext& context) {
#if FUSEDMOE_WITH_CUDA
  const std::int64_t num_tokens = hidden.size(0), top_k = topk_ids.size(1);
  FUSEDMOE_CHECK(num_local_experts_ * num_tokens <= INT32_MAX, "[local_batched] ", num_local_experts_,
                 " slabs of ", num_tokens, " rows: expected at most 2^31 - 1 slots (lower batched_capacity)");
  pair_slot_ = workspace.take(DType::int32, {num_tokens, top_k});
  const int device = hidden.device().index;
  cuda::batched_assign_slots(
      device,
      cuda::BatchedSlots{
          .topk_ids = topk_ids.data_as<const std::int32_t>(),
          .topk_weights = topk_weights.data_as<const float>(),
          .expert_map = expert_map.defined() ? expert_map.data_as<const std::int32_t>() : nullptr,
          .num_tokens = num_tokens,
          .top_k = static_cast<int>(top_k),
          .num_experts = num_experts_,
          .num_local_experts = num_local_experts_,
          .capacity = num_tokens,
          .counts = dispatched.expert_num_tokens.data_as<std::int32_t>(),
          .slot_token = dispatched.slot_token.data_as<std::int32_t>(),
          .slot_weight = dispatched.topk_weights.data_as<float>(),
          .pair_slot = pair_slot_.data_as<std::int32_t>()},
      context.stream);
  cuda::batched_scatter_rows(device, hidden.data(), pair_slot_.data_as<const std::int32_t>(),
                             num_tokens * top_k, static_cast<int>(top_k),
                             static_cast<std::size_t>(hidden.size(1)) * dtype_size(hidden.dtype()),
                             dispatched.hidden.data(), context.stream);
#else
  (void)dispatched;
  (void)topk_ids;
  (void)topk_weights;
  (void)expert_map;
  (void)workspace;
  (void)context;
  throw Unsupported(str_cat("[local_batched] hidden is on ", to_string(hidden.device()),
                            " but this build has no CUDA support"));
#endif
}

// out[t] = the slot-weighted sum of token t's rows, experts in ascending order, in fp32 (as on the host).
void LocalBatchedPrepareFinalize::finalize_on_device(const DispatchedTokens& dispatched,
                                                     const TensorView& expert_out, const TensorView& out,
                                                     const ExecContext& context) {
#if FUSEDMOE_WITH_CUDA
  cuda::batched_combine(out.device().index,
                        cuda::BatchedCombine{.expert_out = expert_out.data(),
                                             .expert_out_dtype = expert_out.dtype(),
                                             .slot_weight = dispatched.topk_weights.data_as<const float>(),
                                             .pair_slot = pair_slot_.data_as<const std::int32_t>(),
                                             .num_tokens = out.size(0),
                                             .top_k = static_cast<int>(pair_slot_.size(1)),
                                             .width = out.size(1),
                                             .out = out.data(),
                                             .out_dtype = out.dtype()},
                        context.stream);
#else
  (void)dispatched;
  (void)expert_out;
  (void)context;
  throw Unsupported(
      str_cat("[local_batched] out is on ", to_string(out.device()), " but this build has no CUDA support"));
#endif
}

}  // namespace fusedmoe
