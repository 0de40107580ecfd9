#include "backends/cpu_reference/experts.hpp"

#include <algorithm>

#include "backends/cpu_reference/expert_mlp.hpp"
#include "core/check.hpp"
#include "core/tensor_checks.hpp"
#include "core/threading.hpp"

namespace fusedmoe {

std::size_t ReferenceExperts::workspace_bytes(const ExpertsProblem& problem) const {
  // Per thread: x [H], expert output [H], running sum [H], intermediate [I].
  return WorkspaceArena::bytes_for(
      DType::fp32, kReferenceMaxThreads * (3 * problem.hidden_size + problem.intermediate_size));
}

void ReferenceExperts::apply(const DispatchedTokens& dispatched, const ExpertWeights& weights,
                             const TensorView& expert_out, WorkspaceArena& workspace,
                             const ExecContext& context) {
  const ExpertMlp mlp(as_canonical(weights, name()), config_.activation, config_.act_dtype);
  const std::int64_t hidden_size = config_.hidden_size;
  const std::int64_t intermediate_size = config_.intermediate_size;
  const std::int64_t num_tokens = dispatched.hidden.size(0);
  const std::int64_t top_k = dispatched.topk_ids.size(1);
  const auto* ids = dispatched.topk_ids.data_as<const std::int32_t>();
  const auto* routing_weights = dispatched.topk_weights.data_as<const float>();
  const auto* map =
      dispatched.expert_map.defined() ? dispatched.expert_map.data_as<const std::int32_t>() : nullptr;
  const int num_threads = std::min(resolve_num_threads(context), kReferenceMaxThreads);
  const std::int64_t per_thread = 3 * hidden_size + intermediate_size;
  float* scratch = workspace.take(DType::fp32, {kReferenceMaxThreads * per_thread}).data_as<float>();

  parallel_for_indexed(num_tokens, num_threads, [&](std::int64_t begin, std::int64_t end, int thread) {
    float* mine = scratch + thread * per_thread;
    const std::span<float> x(mine, hidden_size), y(mine + hidden_size, hidden_size),
        sum(mine + 2 * hidden_size, hidden_size), intermediate(mine + 3 * hidden_size, intermediate_size);
    for (std::int64_t token = begin; token < end; ++token) {
      load_row(dispatched.hidden, token, x);
      std::fill(sum.begin(), sum.end(), 0.0f);
      for (std::int64_t slot = 0; slot < top_k; ++slot) {
        const std::int32_t global = ids[token * top_k + slot];
        const std::int32_t local = map != nullptr ? map[global] : global;
        if (local < 0) continue;  // not on this rank: contributes nothing here
        mlp.run(local, x, y, intermediate);
        const float weight = routing_weights[token * top_k + slot];
        for (std::int64_t column = 0; column < hidden_size; ++column) sum[column] += weight * y[column];
      }
      store_row(expert_out, token, sum);
    }
  });
}

Support reference_supports_device(const MoeConfig& config) {
  if (!config.device.is_cpu())
    return Support::no("runs on the CPU; config device is " + to_string(config.device));
  return Support::yes();
}

std::shared_ptr<const ExpertWeights> reference_convert_weights(const Tensor& w13, const Tensor& w2,
                                                               const MoeConfig& config) {
  check_canonical_expert_weights("cpu_reference", w13, w2, config, Device::cpu());
  return std::make_shared<CanonicalExpertWeights>(w13, w2);
}

}  // namespace fusedmoe
