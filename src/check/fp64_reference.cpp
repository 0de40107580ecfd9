#include "check/fp64_reference.hpp"

#include <cmath>

#include "core/elements.hpp"
#include "core/threading.hpp"

namespace fusedmoe {

namespace {

double at(const TensorView& tensor, std::int64_t index) {
  return load_element(tensor.data(), tensor.dtype(), index);
}

double activation_fp64(Activation activation, double gate) {
  if (activation == Activation::silu) return gate / (1.0 + std::exp(-gate));
  return 0.5 * gate * (1.0 + std::erf(gate / std::sqrt(2.0)));
}

// y += scale * W2_e act(W1_e x, W3_e x) for one expert e of stacked weights.
void add_expert(const TensorView& w13, const TensorView& w2, std::int64_t expert, Activation activation,
                const std::vector<double>& x, double scale, std::vector<double>& y) {
  const std::int64_t hidden = w13.size(2);
  const std::int64_t intermediate = w2.size(2);
  std::vector<double> h(static_cast<std::size_t>(intermediate));
  const std::int64_t base13 = expert * 2 * intermediate * hidden;
  for (std::int64_t i = 0; i < intermediate; ++i) {
    double gate = 0.0, up = 0.0;
    for (std::int64_t c = 0; c < hidden; ++c) {
      gate += at(w13, base13 + i * hidden + c) * x[c];
      up += at(w13, base13 + (intermediate + i) * hidden + c) * x[c];
    }
    h[i] = activation_fp64(activation, gate) * up;
  }
  const std::int64_t base2 = expert * hidden * intermediate;
  for (std::int64_t c = 0; c < hidden; ++c) {
    double sum = 0.0;
    for (std::int64_t i = 0; i < intermediate; ++i) sum += at(w2, base2 + c * intermediate + i) * h[i];
    y[c] += scale * sum;
  }
}

}  // namespace

std::vector<double> fp64_moe_reference(const MoeConfig& config, const MoeWeights& weights,
                                       const TensorView& hidden, const TensorView& topk_ids,
                                       const TensorView& topk_weights, const TensorView& expert_map) {
  const std::int64_t num_tokens = hidden.size(0);
  const std::int64_t hidden_size = config.hidden_size;
  const std::int64_t top_k = topk_ids.size(1);
  const bool on_input = applies_weight_on_input(config.routing.recipe);
  std::vector<double> out(static_cast<std::size_t>(num_tokens * hidden_size), 0.0);
  parallel_for(num_tokens, resolve_num_threads({}), [&](std::int64_t begin, std::int64_t end) {
    std::vector<double> x(static_cast<std::size_t>(hidden_size)), scaled(x.size()), y(x.size());
    for (std::int64_t token = begin; token < end; ++token) {
      for (std::int64_t c = 0; c < hidden_size; ++c) x[c] = at(hidden, token * hidden_size + c);
      std::fill(y.begin(), y.end(), 0.0);
      for (std::int64_t slot = 0; slot < top_k; ++slot) {
        const std::int32_t global = topk_ids.data_as<const std::int32_t>()[token * top_k + slot];
        const std::int32_t local =
            expert_map.defined() ? expert_map.data_as<const std::int32_t>()[global] : global;
        if (local < 0) continue;
        const double weight = topk_weights.data_as<const float>()[token * top_k + slot];
        if (on_input) {
          for (std::int64_t c = 0; c < hidden_size; ++c) scaled[c] = weight * x[c];
          add_expert(weights.w13, weights.w2, local, config.activation, scaled, 1.0, y);
        } else {
          add_expert(weights.w13, weights.w2, local, config.activation, x, weight, y);
        }
      }
      if (config.shared.count > 0) {
        double gate = 1.0;
        if (config.shared.sigmoid_gate) {
          double logit = 0.0;
          for (std::int64_t c = 0; c < hidden_size; ++c) logit += at(weights.shared_gate, c) * x[c];
          gate = 1.0 / (1.0 + std::exp(-logit));
        }
        for (std::int64_t expert = 0; expert < config.shared.count; ++expert) {
          add_expert(weights.shared_w13, weights.shared_w2, expert, config.activation, x, gate, y);
        }
      }
      for (std::int64_t c = 0; c < hidden_size; ++c) out[token * hidden_size + c] = y[c];
    }
  });
  return out;
}

}  // namespace fusedmoe
