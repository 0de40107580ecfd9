// Test helpers: random MoE problems with chosen routings, and kernels built straight from the registry.
#pragma once

#include <gtest/gtest.h>
#include <cstdint>

#include <memory>
#include <string>
#include <vector>

#include "check/compare.hpp"
#include "check/fp64_reference.hpp"
#include "check/random_model.hpp"
#include "core/random.hpp"
#include "fusedmoe/fusedmoe.hpp"

namespace fusedmoe::testing {

// How the top-k ids of a test are made.
enum class RoutingPattern {
  router,          // route() on random logits
  one_hot_expert,  // every token's first choice is expert 0
  skip_last,       // uniformly random distinct experts, never the last one (it gets zero tokens)
};

inline MoeConfig make_config(std::int64_t experts, int top_k, std::int64_t hidden, std::int64_t intermediate,
                             DType act_dtype = DType::bf16, DType weight_dtype = DType::bf16,
                             Activation activation = Activation::silu) {
  MoeConfig config;
  config.num_experts = experts;
  config.hidden_size = hidden;
  config.intermediate_size = intermediate;
  config.act_dtype = act_dtype;
  config.weight_dtype = weight_dtype;
  config.activation = activation;
  config.routing = RoutingConfig{.recipe = RoutingRecipe::softmax_topk_renorm, .top_k = top_k};
  config.validate();
  return config;
}

struct Routing {
  Tensor ids;      // [M, k] int32
  Tensor weights;  // [M, k] fp32
};

// Distinct random experts per row; a deterministic function of the seed.
inline Routing make_routing(const MoeConfig& config, std::int64_t tokens, RoutingPattern pattern,
                            std::uint64_t seed, const MoeWeights& weights, const TensorView& hidden) {
  const int k = config.routing.top_k;
  Routing routing{Tensor::empty(DType::int32, {tokens, k}), Tensor::empty(DType::fp32, {tokens, k})};
  if (pattern == RoutingPattern::router) {
    const Tensor logits = Tensor::empty(DType::fp32, {tokens, config.num_experts});
    if (tokens > 0) fill_normal(logits, seed, 2.0f);
    (void)weights;
    (void)hidden;
    route(logits, config.routing,
          config.routing.use_correction_bias ? weights.correction_bias.view() : TensorView{}, routing.ids,
          routing.weights);
    return routing;
  }
  const std::int64_t pool =
      pattern == RoutingPattern::skip_last ? config.num_experts - 1 : config.num_experts;
  std::uint64_t state = mix64(seed);
  for (std::int64_t token = 0; token < tokens; ++token) {
    std::vector<std::int32_t> experts(static_cast<std::size_t>(pool));
    for (std::int64_t e = 0; e < pool; ++e) experts[e] = static_cast<std::int32_t>(e);
    const std::int64_t first = pattern == RoutingPattern::one_hot_expert ? 1 : 0;  // keep expert 0 first
    for (std::int64_t i = first; i < pool; ++i) {  // Fisher-Yates on [first, pool)
      state = mix64(state);
      const std::int64_t j = i + static_cast<std::int64_t>(state % static_cast<std::uint64_t>(pool - i));
      std::swap(experts[i], experts[j]);
    }
    for (int slot = 0; slot < k; ++slot) {
      routing.ids.data_as<std::int32_t>()[token * k + slot] = experts[slot];
      state = mix64(state);
      routing.weights.data_as<float>()[token * k + slot] = 0.1f + static_cast<float>(state % 1000) / 1000.0f;
    }
  }
  return routing;
}

// A modular or monolithic kernel for `backend` with the PrepareFinalize the config calls for.
struct BuiltKernel {
  std::shared_ptr<const ExpertWeights> weights;
  std::unique_ptr<MoeKernel> kernel;
};

inline BuiltKernel build_kernel(const BackendInfo& backend, const MoeConfig& config,
                                const MoeWeights& weights, std::int64_t max_chunk_tokens = 8192) {
  BuiltKernel built;
  built.weights = backend.convert_weights(weights.w13, weights.w2, config);
  std::unique_ptr<PrepareFinalize> prepare_finalize;
  if (backend.kind == ExpertsKind::monolithic) {
    prepare_finalize = make_prepare_finalize_monolithic(config);
  } else {
    prepare_finalize = make_prepare_finalize(config);
  }
  built.kernel =
      std::make_unique<MoeKernel>(config, std::move(prepare_finalize), backend.make_experts(config),
                                  MoeKernelOptions{.max_chunk_tokens = max_chunk_tokens});
  return built;
}

// Runs a CPU layer's forward(hidden) into a NaN-poisoned output and checks it against the fp64 reference of
// the routing the layer reports, within the tolerance of its act_dtype. Returns the output.
inline Tensor expect_layer_matches_reference(FusedMoeLayer& layer, const MoeWeights& weights,
                                             const Tensor& hidden) {
  const MoeConfig& config = layer.config();
  const std::int64_t tokens = hidden.size(0);
  const Tensor out = Tensor::empty(config.act_dtype, {tokens, config.hidden_size});
  fill_nan(out);
  const Tensor ids = Tensor::empty(DType::int32, {tokens, config.routing.top_k});
  const Tensor routing_weights = Tensor::empty(DType::fp32, {tokens, config.routing.top_k});
  layer.forward(hidden, out, {}, RoutingOutputs{ids, routing_weights});
  const ErrorStats stats =
      compare_to_reference(out, fp64_moe_reference(config, weights, hidden, ids, routing_weights));
  EXPECT_EQ(stats.non_finite, 0);
  EXPECT_LE(stats.relative_error, tolerance_for(config.act_dtype)) << layer.selection().backend->id;
  return out;
}

inline bool bitwise_equal(const TensorView& a, const TensorView& b) {
  return a.nbytes() == b.nbytes() &&
         std::equal(a.data_as<const char>(), a.data_as<const char>() + a.nbytes(), b.data_as<const char>());
}

}  // namespace fusedmoe::testing
