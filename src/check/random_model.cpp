#include "check/random_model.hpp"

#include <cmath>

#include "core/random.hpp"

namespace fusedmoe {

namespace {
// Uniform with the given standard deviation: as good as a normal for weights here, and ~10x cheaper
// to generate for multi-GB presets.
Tensor normal(DType dtype, std::initializer_list<std::int64_t> shape, std::uint64_t seed, double stddev) {
  Tensor tensor = Tensor::empty(dtype, shape);
  const auto half_width = static_cast<float>(stddev * std::sqrt(3.0));
  fill_uniform(tensor, seed, -half_width, half_width);
  return tensor;
}
}  // namespace

MoeWeights random_weights(const MoeConfig& config, std::uint64_t seed) {
  const std::int64_t experts = config.num_local_experts();
  const std::int64_t hidden = config.hidden_size;
  const std::int64_t intermediate = config.intermediate_size;
  const double hidden_scale = 1.0 / std::sqrt(static_cast<double>(hidden));
  MoeWeights weights;
  weights.router_gate = normal(DType::fp32, {config.num_experts, hidden}, seed * 16 + 1, hidden_scale);
  weights.w13 = normal(config.weight_dtype, {experts, 2 * intermediate, hidden}, seed * 16 + 2, hidden_scale);
  weights.w2 = normal(config.weight_dtype, {experts, hidden, intermediate}, seed * 16 + 3,
                      1.0 / std::sqrt(static_cast<double>(intermediate)));
  if (config.routing.use_correction_bias) {
    weights.correction_bias = Tensor::empty(DType::fp32, {config.num_experts});
    fill_uniform(weights.correction_bias, seed * 16 + 4, 0.0f, 0.1f);
  }
  if (config.shared.count > 0) {
    const std::int64_t count = config.shared.count;
    const std::int64_t shared_intermediate = config.shared.intermediate_size;
    weights.shared_w13 =
        normal(config.weight_dtype, {count, 2 * shared_intermediate, hidden}, seed * 16 + 5, hidden_scale);
    weights.shared_w2 = normal(config.weight_dtype, {count, hidden, shared_intermediate}, seed * 16 + 6,
                               1.0 / std::sqrt(static_cast<double>(shared_intermediate)));
  }
  if (config.shared.sigmoid_gate)
    weights.shared_gate = normal(DType::fp32, {1, hidden}, seed * 16 + 7, hidden_scale);
  return weights;
}

Tensor random_hidden(const MoeConfig& config, std::int64_t num_tokens, std::uint64_t seed) {
  Tensor hidden = Tensor::empty(config.act_dtype, {num_tokens, config.hidden_size});
  if (num_tokens > 0) fill_normal(hidden, seed * 16 + 8, 1.0f);
  return hidden;
}

}  // namespace fusedmoe
