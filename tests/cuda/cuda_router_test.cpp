// The GPU router against the CPU router: every recipe, E from 8 to 512, ids (order and ties) equal and
// weights within 1e-6 relative, including NaN/Inf rows and rows of ties.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <sstream>

#include "cuda/cuda_testing.hpp"

namespace fusedmoe {
namespace {

using testing::kGpu;

struct RouterCase {
  RoutingConfig routing;
  std::int64_t experts;
  std::string describe() const {
    std::ostringstream text;
    text << to_string(routing.recipe) << " E=" << experts << " k=" << routing.top_k
         << " groups=" << routing.num_groups << "/" << routing.topk_group
         << (routing.renormalize ? " renorm" : "") << (routing.use_correction_bias ? " bias" : "")
         << " scale=" << routing.routed_scaling_factor;
    return text.str();
  }
};

// Every recipe, with the top-k values and group settings that are valid for E.
std::vector<RouterCase> router_cases(std::int64_t experts) {
  std::vector<RouterCase> cases;
  const int groups = experts % 8 == 0 ? 8 : experts % 6 == 0 ? 6 : 4;
  for (int k : {1, 2, 8}) {
    if (k > experts) continue;
    cases.push_back({{.recipe = RoutingRecipe::softmax_topk, .top_k = k}, experts});
    cases.push_back({{.recipe = RoutingRecipe::softmax_topk_renorm, .top_k = k}, experts});
    cases.push_back({{.recipe = RoutingRecipe::topk_softmax, .top_k = k}, experts});
    const int topk_group = groups / 2;
    if (k <= topk_group * (experts / groups)) {
      for (bool renormalize : {false, true}) {
        cases.push_back({{.recipe = RoutingRecipe::softmax_grouped,
                          .top_k = k,
                          .num_groups = groups,
                          .topk_group = topk_group,
                          .renormalize = renormalize},
                         experts});
        for (bool bias : {false, true}) {
          cases.push_back({{.recipe = RoutingRecipe::sigmoid_grouped_bias,
                            .top_k = k,
                            .num_groups = groups,
                            .topk_group = topk_group,
                            .renormalize = renormalize,
                            .routed_scaling_factor = 2.5f,
                            .use_correction_bias = bias},
                           experts});
        }
      }
    }
  }
  cases.push_back({{.recipe = RoutingRecipe::llama4_top1_sigmoid, .top_k = 1}, experts});
  return cases;
}

// Logits [M, E] in `dtype`: values on a 1/16 grid (exact ties between experts are common, near-ties that
// float rounding could order differently are impossible), plus rows of NaN, +/-inf and all-equal values.
Tensor make_logits(std::int64_t tokens, std::int64_t experts, DType dtype, std::uint64_t seed) {
  Tensor values = Tensor::empty(DType::fp32, {tokens, experts});
  fill_normal(values, seed, 2.0f);
  float* data = values.data_as<float>();
  for (std::int64_t i = 0; i < tokens * experts; ++i) data[i] = std::round(data[i] * 16.0f) / 16.0f;
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  for (std::int64_t e = 0; e < experts; ++e) {
    data[0 * experts + e] = nan;                                           // all NaN: ids 0..k-1
    data[1 * experts + e] = e % 3 == 0 ? inf : (e % 3 == 1 ? -inf : nan);  // infinities tie with each other
    data[2 * experts + e] = 0.75f;                                         // all equal: lowest ids win
    data[3 * experts + e] = e % 5 == 0 ? nan : static_cast<float>(e % 4);  // NaN among ties
  }
  return values.to_dtype(dtype);
}

void expect_same_routing(const TensorView& cpu_ids, const TensorView& cpu_weights, const TensorView& gpu_ids,
                         const TensorView& gpu_weights) {
  const auto* a = cpu_ids.data_as<const std::int32_t>();
  const auto* b = gpu_ids.data_as<const std::int32_t>();
  const auto* wa = cpu_weights.data_as<const float>();
  const auto* wb = gpu_weights.data_as<const float>();
  const std::int64_t k = cpu_ids.size(1);
  int reported = 0;
  for (std::int64_t i = 0; i < cpu_ids.numel() && reported < 5; ++i) {
    const bool ids_equal = a[i] == b[i];
    const bool weights_close = std::abs(wa[i] - wb[i]) <= 1e-6 * std::abs(wa[i]) + 1e-30;
    if (!ids_equal || !weights_close) {
      ADD_FAILURE() << "token " << i / k << " slot " << i % k << ": cpu (" << a[i] << ", " << wa[i]
                    << ") gpu (" << b[i] << ", " << wb[i] << ")";
      ++reported;
    }
  }
}

class CudaRouter : public ::testing::TestWithParam<std::int64_t> {};

TEST_P(CudaRouter, MatchesTheCpuRouterOnEveryRecipe) {
  FUSEDMOE_REQUIRE_CUDA();
  const std::int64_t experts = GetParam();
  const std::int64_t tokens = 67;
  Tensor bias = Tensor::empty(DType::fp32, {experts});
  fill_uniform(bias, 5, 0.0f, 0.1f);
  bias.data_as<float>()[experts - 1] = std::numeric_limits<float>::quiet_NaN();  // sanitised on both sides
  const Tensor gpu_bias = testing::to_device(bias);
  int checked = 0;
  for (DType dtype : {DType::fp32, DType::bf16, DType::fp16}) {
    const Tensor logits = make_logits(tokens, experts, dtype, 11 + static_cast<int>(dtype));
    const Tensor gpu_logits = testing::to_device(logits);
    for (const RouterCase& c : router_cases(experts)) {
      SCOPED_TRACE(c.describe() + " logits " + std::string(to_string(dtype)));
      const int k = c.routing.top_k;
      const Tensor ids = Tensor::empty(DType::int32, {tokens, k}),
                   weights = Tensor::empty(DType::fp32, {tokens, k});
      const Tensor gpu_ids = testing::empty_poisoned(DType::int32, {tokens, k});
      const Tensor gpu_weights = testing::empty_poisoned(DType::fp32, {tokens, k});
      const bool with_bias = c.routing.use_correction_bias;
      route(logits, c.routing, with_bias ? bias.view() : TensorView{}, ids, weights);
      route(gpu_logits, c.routing, with_bias ? gpu_bias.view() : TensorView{}, gpu_ids, gpu_weights);
      expect_same_routing(ids, weights, testing::to_host(gpu_ids), testing::to_host(gpu_weights));
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
}

INSTANTIATE_TEST_SUITE_P(Experts, CudaRouter, ::testing::Values(8, 60, 128, 256, 384, 512),
                         [](const auto& info) {
                           std::string name = "E";
                           name +=
                               std::to_string(info.param);  // (a char* + string&& trips GCC 12's -Wrestrict)
                           return name;
                         });

TEST(CudaRouterArguments, MixedDevicesAreRejectedOnTheHost) {
  FUSEDMOE_REQUIRE_CUDA();
  const RoutingConfig routing{.recipe = RoutingRecipe::softmax_topk_renorm, .top_k = 2};
  const Tensor logits = Tensor::empty(DType::fp32, {4, 8}, kGpu);
  const Tensor cpu_ids = Tensor::empty(DType::int32, {4, 2});
  const Tensor gpu_weights = Tensor::empty(DType::fp32, {4, 2}, kGpu);
  EXPECT_THROW(route(logits, routing, {}, cpu_ids, gpu_weights), InvalidArgument);
  // Zero tokens launch nothing.
  EXPECT_NO_THROW(route(Tensor::empty(DType::fp32, {0, 8}, kGpu), routing, {},
                        Tensor::empty(DType::int32, {0, 2}, kGpu), Tensor::empty(DType::fp32, {0, 2}, kGpu)));
}

TEST(CudaRouterStreams, RunsOnTheGivenStreamAndCapturesInAGraph) {
  FUSEDMOE_REQUIRE_CUDA();
  const RoutingConfig routing{.recipe = RoutingRecipe::sigmoid_grouped_bias,
                              .top_k = 8,
                              .num_groups = 8,
                              .topk_group = 4,
                              .renormalize = true,
                              .routed_scaling_factor = 2.5f,
                              .use_correction_bias = true};
  const std::int64_t tokens = 33, experts = 256;
  Tensor bias = Tensor::empty(DType::fp32, {experts});
  fill_uniform(bias, 3, 0.0f, 0.1f);
  const Tensor logits = make_logits(tokens, experts, DType::fp32, 4);
  const Tensor ids = Tensor::empty(DType::int32, {tokens, 8}),
               weights = Tensor::empty(DType::fp32, {tokens, 8});
  route(logits, routing, bias, ids, weights);

  testing::TestStream stream;
  const Tensor gpu_logits = testing::to_device(logits), gpu_bias = testing::to_device(bias);
  const Tensor gpu_ids = testing::empty_poisoned(DType::int32, {tokens, 8});
  const Tensor gpu_weights = testing::empty_poisoned(DType::fp32, {tokens, 8});
  cudaGraphExec_t graph = testing::capture_graph(
      stream.get(), [&] { route(gpu_logits, routing, gpu_bias, gpu_ids, gpu_weights, stream.context()); });
  testing::check_cuda(cudaGraphLaunch(graph, stream.get()), "cudaGraphLaunch");
  stream.synchronize();
  cudaGraphExecDestroy(graph);
  expect_same_routing(ids, weights, testing::to_host(gpu_ids), testing::to_host(gpu_weights));
}

}  // namespace
}  // namespace fusedmoe
