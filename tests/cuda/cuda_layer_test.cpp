// FusedMoeLayer on cuda:0 end to end (router logits, GPU router, routed experts, shared experts, Llama-4
// weight on input) against the fp64 reference and the same layer on the CPU; and a whole layer captured in
// a CUDA graph.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>

#include "cuda/cuda_testing.hpp"

namespace fusedmoe {
namespace {

using testing::kGpu;

struct LayerCase {
  std::string label;
  MoeConfig config;  // CPU device; the test moves it to cuda:0
  std::int64_t tokens;
};

void PrintTo(const LayerCase& c, std::ostream* os) {
  *os << c.label << ": " << c.config.describe() << ", M=" << c.tokens;
}

std::vector<LayerCase> layer_cases() {
  std::vector<LayerCase> cases;
  cases.push_back({"qwen3_like", testing::make_config(16, 4, 128, 64), 37});
  {
    MoeConfig config = testing::make_config(32, 4, 96, 48);
    config.routing = RoutingConfig{.recipe = RoutingRecipe::sigmoid_grouped_bias,
                                   .top_k = 4,
                                   .num_groups = 4,
                                   .topk_group = 2,
                                   .renormalize = true,
                                   .routed_scaling_factor = 2.5f,
                                   .use_correction_bias = true};
    config.shared = {.count = 1, .intermediate_size = 96, .sigmoid_gate = false};
    cases.push_back({"deepseek_like", config, 41});
  }
  {
    MoeConfig config = testing::make_config(12, 2, 64, 32);
    config.routing.recipe = RoutingRecipe::softmax_topk;
    config.shared = {.count = 2, .intermediate_size = 32, .sigmoid_gate = true};
    cases.push_back({"qwen2_shared_gate", config, 19});
  }
  {
    MoeConfig config = testing::make_config(8, 1, 64, 48);
    config.routing.recipe = RoutingRecipe::llama4_top1_sigmoid;
    config.shared = {.count = 1, .intermediate_size = 64, .sigmoid_gate = false};
    cases.push_back({"llama4_weight_on_input", config, 23});
  }
  {
    MoeConfig config = testing::make_config(8, 2, 72, 40, DType::bf16, DType::bf16, Activation::gelu);
    config.routing.recipe = RoutingRecipe::topk_softmax;
    cases.push_back({"gelu_topk_softmax", config, 9});
  }
  {
    // The batched format on the GPU: local_batched's device dispatch and cuda_batched, in chunks of 16.
    MoeConfig config = testing::make_config(16, 4, 96, 40);
    config.parallel.dispatch = DispatchMode::local_batched;
    config.parallel.batched_capacity = 16;
    config.shared = {.count = 1, .intermediate_size = 48, .sigmoid_gate = true};
    cases.push_back({"local_batched", config, 37});
  }
  return cases;
}

class CudaLayer : public ::testing::TestWithParam<LayerCase> {};

TEST_P(CudaLayer, MatchesTheCpuLayerAndFp64) {
  FUSEDMOE_REQUIRE_CUDA();
  const LayerCase& c = GetParam();
  MoeConfig gpu_config = c.config;
  gpu_config.device = kGpu;
  if (evaluate_backends(gpu_config, Platform::detect(kGpu)).empty())
    GTEST_SKIP() << "no CUDA backend registered";
  const MoeWeights weights = random_weights(c.config, 11);
  const Tensor hidden = random_hidden(c.config, c.tokens, 12);
  const int k = c.config.routing.top_k;

  FusedMoeLayer cpu_layer(c.config);
  cpu_layer.set_weights(weights);
  cpu_layer.finalize_weights();
  const Tensor cpu_out = Tensor::empty(DType::bf16, {c.tokens, c.config.hidden_size});
  const Tensor cpu_ids = Tensor::empty(DType::int32, {c.tokens, k}),
               cpu_weights = Tensor::empty(DType::fp32, {c.tokens, k});
  cpu_layer.forward(hidden, cpu_out, {}, RoutingOutputs{cpu_ids, cpu_weights});

  FusedMoeLayer gpu_layer(gpu_config);
  gpu_layer.set_weights(testing::weights_on(weights));
  try {
    gpu_layer.finalize_weights();
  } catch (const Unsupported& error) {
    GTEST_SKIP() << error.what();
  }
  const Tensor out = testing::empty_poisoned(DType::bf16, {c.tokens, c.config.hidden_size});
  const Tensor ids = testing::empty_poisoned(DType::int32, {c.tokens, k});
  const Tensor routing_weights = testing::empty_poisoned(DType::fp32, {c.tokens, k});
  gpu_layer.forward(testing::to_device(hidden), out, {}, RoutingOutputs{ids, routing_weights});
  const Tensor host_out = testing::to_host(out), host_ids = testing::to_host(ids);
  const Tensor host_weights = testing::to_host(routing_weights);

  // The GPU computes the router logits in the CPU's order and routes by the CPU's rules, so the routing
  // agrees; a near-tie that exp's last bit decides differently may flip a slot, hardly ever more.
  std::int64_t differing = 0;
  for (std::int64_t i = 0; i < c.tokens * k; ++i) {
    const float a = cpu_weights.data_as<float>()[i], b = host_weights.data_as<float>()[i];
    differing += cpu_ids.data_as<std::int32_t>()[i] != host_ids.data_as<std::int32_t>()[i] ||
                 std::abs(a - b) > 1e-6f * std::abs(a) + 1e-30f;
  }
  EXPECT_LE(differing * 100, c.tokens * k)
      << "GPU routing differs from the CPU layer's in " << differing << " of " << c.tokens * k << " slots";
  if (differing > 0) std::cout << "  " << differing << " routing slots differ from the CPU layer's\n";
  // Against fp64 with the routing the GPU layer used (so a near-tie could not make this flaky).
  const ErrorStats stats =
      compare_to_reference(host_out, fp64_moe_reference(c.config, weights, hidden, host_ids, host_weights));
  EXPECT_EQ(stats.non_finite, 0);
  EXPECT_LE(stats.relative_error, tolerance_for(DType::bf16)) << gpu_layer.selection().backend->id;
  const ErrorStats cpu_stats =
      compare_to_reference(cpu_out, fp64_moe_reference(c.config, weights, hidden, cpu_ids, cpu_weights));
  EXPECT_LE(cpu_stats.relative_error, tolerance_for(DType::bf16)) << cpu_layer.selection().backend->id;
}

INSTANTIATE_TEST_SUITE_P(Cases, CudaLayer, ::testing::ValuesIn(layer_cases()),
                         [](const auto& info) { return info.param.label; });

// The whole layer (logits, router, experts, shared experts, add) captured in one CUDA graph, with the
// standard and the batched local dispatch.
class CudaLayerGraph : public ::testing::TestWithParam<DispatchMode> {};

TEST_P(CudaLayerGraph, WholeLayerCapturesAndReplaysLikeEager) {
  FUSEDMOE_REQUIRE_CUDA();
  MoeConfig config = layer_cases()[1].config;  // grouped routing with bias and a shared expert
  config.device = kGpu;
  config.parallel.dispatch = GetParam();
  config.parallel.batched_capacity = 16;  // local_batched: two chunks
  const std::int64_t tokens = 29;
  const MoeWeights weights = random_weights(config, 5);
  FusedMoeLayer layer(config);
  layer.set_weights(testing::weights_on(weights));
  try {
    layer.finalize_weights();
  } catch (const Unsupported& error) {
    GTEST_SKIP() << error.what();
  }
  layer.reserve(tokens);
  testing::TestStream stream;
  const Tensor host_input = random_hidden(config, tokens, 6);
  const Tensor input = testing::to_device(host_input);
  const Tensor eager = testing::empty_poisoned(DType::bf16, {tokens, config.hidden_size});
  const Tensor ids = testing::empty_poisoned(DType::int32, {tokens, config.routing.top_k});
  const Tensor routing_weights = testing::empty_poisoned(DType::fp32, {tokens, config.routing.top_k});
  layer.forward(input, eager, stream.context(), RoutingOutputs{ids, routing_weights});
  stream.synchronize();
  // The eager run is the MoE (so that two untouched outputs cannot pass as equal below).
  const ErrorStats stats = compare_to_reference(
      testing::to_host(eager), fp64_moe_reference(config, weights, host_input, testing::to_host(ids),
                                                  testing::to_host(routing_weights)));
  EXPECT_EQ(stats.non_finite, 0);
  EXPECT_LE(stats.relative_error, tolerance_for(DType::bf16));
  const Tensor replayed = testing::empty_poisoned(DType::bf16, {tokens, config.hidden_size});
  cudaGraphExec_t graph =
      testing::capture_graph(stream.get(), [&] { layer.forward(input, replayed, stream.context()); });
  for (int replay = 0; replay < 2; ++replay) {
    testing::poison(replayed, stream.get());
    testing::check_cuda(cudaGraphLaunch(graph, stream.get()), "cudaGraphLaunch");
    stream.synchronize();
    EXPECT_TRUE(testing::bitwise_equal(testing::to_host(eager), testing::to_host(replayed)))
        << "replay " << replay;
  }
  cudaGraphExecDestroy(graph);
}

INSTANTIATE_TEST_SUITE_P(Dispatch, CudaLayerGraph,
                         ::testing::Values(DispatchMode::local, DispatchMode::local_batched),
                         [](const auto& info) { return std::string(to_string(info.param)); });

}  // namespace
}  // namespace fusedmoe
