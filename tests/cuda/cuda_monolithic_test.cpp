// cuda_monolithic: every routing recipe at M = 1, inside the low-latency range and beyond it (tiled path)
// against the fp64 reference with NaN-poisoned outputs and a bitwise repeat; the path it takes (cuda_fused's
// streaming pair, bit for bit, then its tiled path); CUDA-graph capture and replay; the layer; supports()
// reasons, the limits' constants and the registry placement (the last three run without a GPU).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "backends/cuda_fused/kernels/launch.hpp"
#include "backends/cuda_monolithic/experts.hpp"
#include "cuda/gpu_case_testing.hpp"

namespace fusedmoe {
namespace {

using cuda_monolithic::kLowLatencyMaxPairs;
using cuda_monolithic::kLowLatencyMaxTokens;
using cuda_monolithic::kMaxExperts;
using testing::kGpu;

const BackendInfo& monolithic() {
  return testing::registered_backend("cuda_monolithic");
}

// One routing setup (recipe, E, k, groups, bias) and the expert shapes it runs on.
struct RecipeCase {
  std::string label;
  RoutingConfig routing;
  std::int64_t experts, hidden = 96, intermediate = 40;  // no multiple of any tile
  Activation activation = Activation::silu;
};

void PrintTo(const RecipeCase& c, std::ostream* os) {
  *os << c.label << "(" << to_string(c.routing.recipe) << ",E=" << c.experts << ",k=" << c.routing.top_k
      << ",H=" << c.hidden << ",I=" << c.intermediate << "," << to_string(c.activation) << ")";
}

RoutingConfig grouped(RoutingRecipe recipe, int top_k, int groups, int topk_group, bool renormalize,
                      float scale, bool bias) {
  return RoutingConfig{.recipe = recipe,
                       .top_k = top_k,
                       .num_groups = groups,
                       .topk_group = topk_group,
                       .renormalize = renormalize,
                       .routed_scaling_factor = scale,
                       .use_correction_bias = bias};
}

std::vector<RecipeCase> recipe_cases() {
  using R = RoutingRecipe;
  return {
      {"softmax_topk", {.recipe = R::softmax_topk, .top_k = 4}, 64},
      {"softmax_topk_renorm_gelu",
       {.recipe = R::softmax_topk_renorm, .top_k = 8},
       128,
       96,
       40,
       Activation::gelu},
      {"topk_softmax", {.recipe = R::topk_softmax, .top_k = 2}, 8},
      {"softmax_grouped", grouped(R::softmax_grouped, 6, 8, 4, false, 1.0f, false), 64},
      {"softmax_grouped_renorm_e256", grouped(R::softmax_grouped, 8, 8, 4, true, 1.0f, false), 256},
      {"sigmoid_grouped_bias_scaled", grouped(R::sigmoid_grouped_bias, 8, 8, 4, true, 2.5f, true), 256},
      {"sigmoid_grouped_no_bias", grouped(R::sigmoid_grouped_bias, 4, 4, 2, false, 1.0f, false), 64},
      {"llama4_top1_sigmoid", {.recipe = R::llama4_top1_sigmoid, .top_k = 1}, 16},
      {"e512", {.recipe = R::softmax_topk_renorm, .top_k = 8}, 512},
      {"odd_hidden", {.recipe = R::softmax_topk_renorm, .top_k = 3}, 24, 67, 29},  // padded hidden rows
  };
}

MoeConfig gpu_config(const RecipeCase& c) {
  MoeConfig config = testing::make_config(c.experts, c.routing.top_k, c.hidden, c.intermediate, DType::bf16,
                                          DType::bf16, c.activation);
  config.routing = c.routing;
  config.device = kGpu;
  config.validate();
  return config;
}

// Logits [M, E] on a 1/16 grid: exact ties are common (both routers break them alike), near-ties that float
// rounding could order differently impossible; so the CPU router's ids are the GPU router's
// (tests/cuda/cuda_router_test.cpp checks that on such logits).
Tensor grid_logits(std::int64_t tokens, std::int64_t experts, std::uint64_t seed) {
  Tensor logits = Tensor::empty(DType::fp32, {tokens, experts});
  if (tokens == 0) return logits;
  fill_normal(logits, seed, 2.0f);
  float* values = logits.data_as<float>();
  for (std::int64_t i = 0; i < tokens * experts; ++i) values[i] = std::round(values[i] * 16.0f) / 16.0f;
  return logits;
}

// The CPU router's ids and weights for the logits (what the fp64 reference is given).
testing::Routing cpu_routing(const MoeConfig& config, const MoeWeights& weights, const Tensor& logits) {
  const std::int64_t tokens = logits.size(0);
  const int k = config.routing.top_k;
  testing::Routing routing{Tensor::empty(DType::int32, {tokens, k}), Tensor::empty(DType::fp32, {tokens, k})};
  route(logits, config.routing,
        config.routing.use_correction_bias ? weights.correction_bias.view() : TensorView{}, routing.ids,
        routing.weights);
  return routing;
}

// M = 1, inside the low-latency range (its edge: 64 tokens), and beyond it (the tiled fallback).
class CudaMonolithic : public ::testing::TestWithParam<std::tuple<RecipeCase, std::int64_t>> {};

TEST_P(CudaMonolithic, MatchesFp64ReferenceAndIsBitwiseRepeatable) {
  FUSEDMOE_REQUIRE_CUDA();
  const RecipeCase& c = std::get<0>(GetParam());
  const std::int64_t tokens = std::get<1>(GetParam());
  const MoeConfig config = gpu_config(c);
  FUSEDMOE_REQUIRE_BACKEND(monolithic(), config);
  SCOPED_TRACE(c.label + " M=" + std::to_string(tokens) +
               (cuda_monolithic::takes_low_latency_path(config, tokens) ? " (low-latency)" : " (tiled)"));
  const MoeWeights weights = random_weights(config, 7);  // with a correction bias when the routing takes one
  const Tensor hidden = random_hidden(config, tokens, 8);
  const Tensor logits = grid_logits(tokens, c.experts, 9);
  const testing::Routing routing = cpu_routing(config, weights, logits);

  testing::BuiltKernel built = testing::build_kernel(monolithic(), config, testing::weights_on(weights));
  const Tensor gpu_hidden = testing::to_device(hidden), gpu_logits = testing::to_device(logits);
  const Tensor gpu_bias = testing::to_device(weights.correction_bias);
  const Tensor first = testing::empty_poisoned(DType::bf16, {tokens, c.hidden});
  built.kernel->forward_monolithic(gpu_hidden, gpu_logits, gpu_bias, *built.weights, first);
  const Tensor out = testing::to_host(first);

  const ErrorStats stats =
      compare_to_reference(out, fp64_moe_reference(config, weights, hidden, routing.ids, routing.weights));
  EXPECT_EQ(stats.non_finite, 0) << "outputs left unwritten (still NaN) or overflowed";
  EXPECT_LE(stats.relative_error, tolerance_for(DType::bf16)) << "max abs error " << stats.max_abs_error;

  const Tensor second = testing::empty_poisoned(DType::bf16, {tokens, c.hidden});
  built.kernel->forward_monolithic(gpu_hidden, gpu_logits, gpu_bias, *built.weights, second);
  EXPECT_TRUE(testing::bitwise_equal(out, testing::to_host(second))) << "two runs differ";
}

INSTANTIATE_TEST_SUITE_P(Recipes, CudaMonolithic,
                         ::testing::Combine(::testing::ValuesIn(recipe_cases()),
                                            ::testing::Values(1, 17, 64, 200)),
                         [](const auto& info) {
                           return std::get<0>(info.param).label + "_m" +
                                  std::to_string(std::get<1>(info.param));
                         });

// Within the limits the forward is route + cuda_fused's streaming pair, beyond them route + its tiled path:
// the outputs equal cuda_fused's on the GPU router's ids, bit for bit (the two paths round differently).
TEST(CudaMonolithicPath, IsCudaFusedStreamingPairThenItsTiledPath) {
  FUSEDMOE_REQUIRE_CUDA();
  const RecipeCase c{"path", grouped(RoutingRecipe::sigmoid_grouped_bias, 8, 8, 4, true, 2.5f, true), 64};
  const MoeConfig config = gpu_config(c);
  FUSEDMOE_REQUIRE_BACKEND(monolithic(), config);
  const MoeWeights weights = random_weights(config, 11);
  const MoeWeights gpu_weights = testing::weights_on(weights);
  const Tensor gpu_bias = testing::to_device(weights.correction_bias);
  testing::BuiltKernel built = testing::build_kernel(monolithic(), config, gpu_weights);
  const testing::ScopedEnv no_tile("FUSEDMOE_CUDA_FUSED_TILE", nullptr);
  for (std::int64_t tokens : {std::int64_t{0}, std::int64_t{1}, kLowLatencyMaxPairs / 8,
                              kLowLatencyMaxPairs / 8 + 1, std::int64_t{300}}) {
    const bool low_latency = tokens * 8 <= kLowLatencyMaxPairs;
    SCOPED_TRACE("M=" + std::to_string(tokens));
    EXPECT_EQ(cuda_monolithic::takes_low_latency_path(config, tokens), low_latency);
    const Tensor gpu_hidden = testing::to_device(random_hidden(config, tokens, 12));
    const Tensor gpu_logits = testing::to_device(grid_logits(tokens, c.experts, 13));
    const Tensor got = testing::empty_poisoned(DType::bf16, {tokens, c.hidden});
    built.kernel->forward_monolithic(gpu_hidden, gpu_logits, gpu_bias, *built.weights, got);

    const testing::ScopedEnv path("FUSEDMOE_CUDA_FUSED_PATH", low_latency ? "stream" : "tiled");
    testing::BuiltKernel fused =
        testing::build_kernel(testing::registered_backend("cuda_fused"), config, gpu_weights);
    const Tensor ids = Tensor::empty(DType::int32, {tokens, 8}, kGpu);
    const Tensor routing_weights = Tensor::empty(DType::fp32, {tokens, 8}, kGpu);
    route(gpu_logits, config.routing, gpu_bias, ids, routing_weights);
    const Tensor expected = testing::empty_poisoned(DType::bf16, {tokens, c.hidden});
    fused.kernel->forward(gpu_hidden, ids, routing_weights, {}, *fused.weights, expected);
    EXPECT_TRUE(testing::bitwise_equal(testing::to_host(got), testing::to_host(expected)));
  }
}

// apply() allocates nothing and never waits for the host: routing and experts capture into one CUDA graph
// (global capture mode fails on any allocation or synchronisation), and replays on new inputs in the same
// buffers equal the eager runs; on both paths, and with the weight on the input (one more launch).
class CudaMonolithicGraph : public ::testing::TestWithParam<std::tuple<RecipeCase, std::int64_t>> {};

TEST_P(CudaMonolithicGraph, CaptureAndReplayEqualEager) {
  FUSEDMOE_REQUIRE_CUDA();
  const RecipeCase& c = std::get<0>(GetParam());
  const std::int64_t tokens = std::get<1>(GetParam());
  const MoeConfig config = gpu_config(c);
  FUSEDMOE_REQUIRE_BACKEND(monolithic(), config);
  const MoeWeights weights = random_weights(config, 31);
  testing::BuiltKernel built = testing::build_kernel(monolithic(), config, testing::weights_on(weights));
  built.kernel->reserve(tokens);
  testing::TestStream stream;
  const Tensor hidden[2] = {random_hidden(config, tokens, 32), random_hidden(config, tokens, 33)};
  const Tensor logits[2] = {grid_logits(tokens, c.experts, 34), grid_logits(tokens, c.experts, 35)};
  const Tensor gpu_hidden = testing::to_device(hidden[0]), gpu_logits = testing::to_device(logits[0]);
  const Tensor gpu_bias = testing::to_device(weights.correction_bias);
  const Tensor out = testing::empty_poisoned(DType::bf16, {tokens, c.hidden});
  auto forward = [&] {
    built.kernel->forward_monolithic(gpu_hidden, gpu_logits, gpu_bias, *built.weights, out, stream.context());
  };
  Tensor eager[2];
  for (int input = 0; input < 2; ++input) {
    copy_tensor(hidden[input], gpu_hidden);
    copy_tensor(logits[input], gpu_logits);
    testing::poison(out, stream.get());
    forward();
    stream.synchronize();
    eager[input] = testing::to_host(out);
  }
  cudaGraphExec_t graph = testing::capture_graph(stream.get(), forward);
  for (int input : {0, 1, 0}) {
    testing::poison(out, stream.get());
    copy_tensor(hidden[input], gpu_hidden);  // new contents, same buffers: the graph reads them on replay
    copy_tensor(logits[input], gpu_logits);
    testing::check_cuda(cudaGraphLaunch(graph, stream.get()), "cudaGraphLaunch");
    stream.synchronize();
    EXPECT_TRUE(testing::bitwise_equal(testing::to_host(out), eager[input])) << "replay of input " << input;
  }
  cudaGraphExecDestroy(graph);
  const testing::Routing routing = cpu_routing(config, weights, logits[1]);
  EXPECT_LE(compare_to_reference(eager[1],
                                 fp64_moe_reference(config, weights, hidden[1], routing.ids, routing.weights))
                .relative_error,
            tolerance_for(DType::bf16));
}

INSTANTIATE_TEST_SUITE_P(
    Paths, CudaMonolithicGraph,
    ::testing::Values(std::make_tuple(recipe_cases()[5], std::int64_t{5}),    // grouped + bias, low latency
                      std::make_tuple(recipe_cases()[5], std::int64_t{100}),  // grouped + bias, tiled
                      std::make_tuple(recipe_cases()[7], std::int64_t{7}),    // Llama-4, low latency
                      std::make_tuple(recipe_cases()[9], std::int64_t{9})),   // padded hidden rows
    [](const auto& info) {
      return std::get<0>(info.param).label + "_m" + std::to_string(std::get<1>(info.param));
    });

// Through FusedMoeLayer (router logits on the GPU, forward_monolithic, chunks, a shared expert), forced to
// this backend: against fp64 with the routing the layer reports.
TEST(CudaMonolithicLayer, ForcedLayerMatchesFp64) {
  FUSEDMOE_REQUIRE_CUDA();
  MoeConfig config = gpu_config(recipe_cases()[5]);
  config.shared = {.count = 1, .intermediate_size = 48, .sigmoid_gate = false};
  FUSEDMOE_REQUIRE_BACKEND(monolithic(), config);
  const std::int64_t tokens = 41;
  MoeConfig cpu_config = config;
  cpu_config.device = Device::cpu();
  const MoeWeights weights = random_weights(cpu_config, 5);
  const Tensor hidden = random_hidden(cpu_config, tokens, 6);
  LayerOptions options = LayerOptions::with_backend("cuda_monolithic");
  options.shared_experts_backend = "cuda_fused";
  options.max_chunk_tokens = 16;  // three chunks, each on the low-latency path
  FusedMoeLayer layer(config, options);
  layer.set_weights(testing::weights_on(weights));
  layer.finalize_weights();
  EXPECT_EQ(layer.selection().backend->id, "cuda_monolithic");
  const int k = config.routing.top_k;
  const Tensor out = testing::empty_poisoned(DType::bf16, {tokens, config.hidden_size});
  const Tensor ids = testing::empty_poisoned(DType::int32, {tokens, k});
  const Tensor routing_weights = testing::empty_poisoned(DType::fp32, {tokens, k});
  layer.forward(testing::to_device(hidden), out, {}, RoutingOutputs{ids, routing_weights});
  const ErrorStats stats = compare_to_reference(
      testing::to_host(out), fp64_moe_reference(cpu_config, weights, hidden, testing::to_host(ids),
                                                testing::to_host(routing_weights)));
  EXPECT_EQ(stats.non_finite, 0);
  EXPECT_LE(stats.relative_error, tolerance_for(DType::bf16)) << "max abs error " << stats.max_abs_error;
}

// ---- no GPU needed below ----

TEST(CudaMonolithicSupports, StatesWhatItCannotDo) {
  const BackendInfo& backend = monolithic();
  EXPECT_EQ(backend.kind, ExpertsKind::monolithic);
  const Platform platform = testing::synthetic_h100();
  for (const RecipeCase& c : recipe_cases()) {
    EXPECT_TRUE(backend.supports(gpu_config(c), platform, ActivationFormat::standard).ok) << c.label;
  }
  const MoeConfig config = gpu_config(recipe_cases()[0]);
  auto reason = [&](const MoeConfig& changed, const Platform& on = testing::synthetic_h100(),
                    ActivationFormat format = ActivationFormat::standard) {
    const Support support = backend.supports(changed, on, format);
    EXPECT_FALSE(support.ok);
    return support.reason;
  };
  EXPECT_EQ(reason(config, platform, ActivationFormat::batched),
            "routes inside itself and takes the standard format; the dispatch delivers batched");
  for (DispatchMode mode : {DispatchMode::allgather, DispatchMode::all2all, DispatchMode::all2all_batched}) {
    MoeConfig parallel = config;
    parallel.parallel.dispatch = mode;
    parallel.parallel.ep_size = 2;
    EXPECT_EQ(reason(parallel),
              "routes inside itself on one device; dispatch is " + std::string(to_string(mode)));
  }
  MoeConfig fp32 = config;
  fp32.weight_dtype = fp32.act_dtype = DType::fp32;
  EXPECT_EQ(reason(fp32), "needs bf16 weights; weight_dtype is fp32");
  MoeConfig many = config;
  many.num_experts = kMaxExperts + 1;
  EXPECT_EQ(reason(many), "routes and streams at most 1024 experts; num_experts is 1025");
  MoeConfig wide = config;
  wide.num_experts = kMaxExperts;
  wide.routing.top_k = static_cast<int>(kLowLatencyMaxPairs) + 1;
  EXPECT_EQ(reason(wide), "streams at most 512 (token, expert) pairs; top_k is 513");
  Platform small_shared = platform;
  small_shared.cuda.shared_memory_per_block = 163 * 1024;  // an A100's opt-in maximum
  const std::string shared = reason(config, small_shared);
  EXPECT_NE(shared.find("the low-latency kernels need "), std::string::npos) << shared;
  EXPECT_NE(shared.find("allows 166912"), std::string::npos) << shared;
  Platform none = platform;
  none.cuda = CudaInfo{};
  none.cuda.reason = "synthetic";
  EXPECT_EQ(reason(config, none), "no CUDA device: synthetic");
  MoeConfig on_cpu = config;
  on_cpu.device = Device::cpu();
  EXPECT_EQ(reason(on_cpu), "runs on CUDA; config device is cpu");
}

// The header's constants are cuda_fused's streaming limits (README.md states them).
TEST(CudaMonolithicLimits, AreTheStreamingPathLimits) {
  const std::size_t plenty = std::size_t{1} << 30;
  using cuda_fused::stream_path_fits;
  EXPECT_TRUE(stream_path_fits(kLowLatencyMaxTokens, 1, 1, plenty));
  EXPECT_FALSE(stream_path_fits(kLowLatencyMaxTokens + 1, 1, 1, plenty));
  EXPECT_TRUE(stream_path_fits(kLowLatencyMaxPairs / 16, 16, 1, plenty));  // 32 tokens, 512 pairs
  EXPECT_FALSE(stream_path_fits(27, 19, 1, plenty));                       // 27 tokens, 513 pairs
  EXPECT_FALSE(stream_path_fits(1, static_cast<int>(kLowLatencyMaxPairs) + 1, 1, plenty));
  EXPECT_TRUE(stream_path_fits(1, 1, kMaxExperts, plenty));
  EXPECT_FALSE(stream_path_fits(1, 1, kMaxExperts + 1, plenty));
}

// Registered after the modular CUDA backends: the oracle runs it only when forced, until measured.
TEST(CudaMonolithicRegistry, ComesAfterTheModularBackendsAndIsPickedOnlyWhenForced) {
  const testing::ScopedEnv no_override("FUSEDMOE_BACKEND", nullptr);
  std::vector<std::string> ids;
  for (const BackendInfo* backend : backends_for(DeviceKind::cuda)) ids.push_back(backend->id);
  const auto position = [&](const char* id) { return std::find(ids.begin(), ids.end(), id) - ids.begin(); };
  ASSERT_LT(position("cuda_monolithic"), static_cast<std::ptrdiff_t>(ids.size()));
  for (const char* modular : {"cuda_fused", "cuda_cutlass_grouped", "cuda_cublas_grouped"})
    EXPECT_LT(position(modular), position("cuda_monolithic")) << modular;
  const MoeConfig config = gpu_config(recipe_cases()[0]);
  const Platform platform = testing::synthetic_h100();
  EXPECT_EQ(select_backend(config, platform).backend->id, "cuda_fused");
  const Selection forced = select_backend(config, platform, "cuda_monolithic");
  EXPECT_EQ(forced.backend->id, "cuda_monolithic");
  EXPECT_TRUE(forced.overridden);
}

}  // namespace
}  // namespace fusedmoe
