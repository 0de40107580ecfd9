// cuda_cutlass_grouped against the fp64 reference on the grouped-GEMM edge cases; determinism; batch-size
// independence; CUDA-graph capture and replay; what supports() declines and why.
#include <gtest/gtest.h>

#include <cstring>

#include "cuda/gpu_case_testing.hpp"

namespace fusedmoe {
namespace {

using testing::GpuCase;
using testing::kGpu;
using testing::RoutingPattern;

const BackendInfo& cutlass_grouped() {
  return testing::registered_backend("cuda_cutlass_grouped");
}

class CudaCutlassGrouped : public ::testing::TestWithParam<GpuCase> {};

TEST_P(CudaCutlassGrouped, MatchesFp64ReferenceAndIsBitwiseRepeatable) {
  FUSEDMOE_REQUIRE_CUDA();
  testing::expect_matches_reference_and_repeats(cutlass_grouped(), GetParam());
}

INSTANTIATE_TEST_SUITE_P(Cases, CudaCutlassGrouped, ::testing::ValuesIn(testing::grouped_cases()),
                         [](const auto& info) { return info.param.label; });

// One tile configuration and no split-K: every output element sums its k-steps in the same order whatever the
// batch, so a token's row does not depend on how many other tokens share the call.
TEST(CudaCutlassGroupedBatch, ResultsDoNotDependOnBatchSize) {
  FUSEDMOE_REQUIRE_CUDA();
  const GpuCase c{"batch", 1500, 32, 192, 96, 4};
  const MoeConfig config = testing::gpu_case_config(c);
  FUSEDMOE_REQUIRE_BACKEND(cutlass_grouped(), config);
  const MoeWeights weights = random_weights(config, 21);
  const Tensor hidden = random_hidden(config, c.tokens, 22);
  const testing::Routing routing =
      testing::make_routing(config, c.tokens, RoutingPattern::router, 23, weights, hidden);
  testing::BuiltKernel built =
      testing::build_kernel(cutlass_grouped(), config, testing::weights_on(weights), 0);
  const Tensor gpu_hidden = testing::to_device(hidden), gpu_ids = testing::to_device(routing.ids);
  const Tensor gpu_weights = testing::to_device(routing.weights);
  const Tensor whole = testing::empty_poisoned(DType::bf16, {c.tokens, c.hidden});
  built.kernel->forward(gpu_hidden, gpu_ids, gpu_weights, {}, *built.weights, whole);
  const Tensor expected = testing::to_host(whole);
  const std::int64_t row_bytes = c.hidden * 2;
  for (std::int64_t tokens : {1, 3, 17, 100, 333, 1000}) {
    SCOPED_TRACE("M=" + std::to_string(tokens));
    const Tensor part = testing::empty_poisoned(DType::bf16, {tokens, c.hidden});
    built.kernel->forward(gpu_hidden.view().slice_rows(0, tokens), gpu_ids.view().slice_rows(0, tokens),
                          gpu_weights.view().slice_rows(0, tokens), {}, *built.weights, part);
    const Tensor got = testing::to_host(part);
    EXPECT_EQ(std::memcmp(got.data(), expected.data(), static_cast<std::size_t>(tokens * row_bytes)), 0);
  }
  const std::vector<double> reference =
      fp64_moe_reference(config, weights, hidden, routing.ids, routing.weights);
  EXPECT_LE(compare_to_reference(expected, reference).relative_error, tolerance_for(DType::bf16));
}

// The problem sizes are written on the device and nothing is read back: the forward captures into a CUDA
// graph (global capture mode fails on any allocation or synchronisation), and replays with new inputs and new
// routing (so different per-expert row counts) equal the eager runs.
TEST(CudaCutlassGroupedGraph, CaptureAndReplayEqualEager) {
  FUSEDMOE_REQUIRE_CUDA();
  const GpuCase c{"graph", 77, 16, 96, 64, 4};
  const MoeConfig config = testing::gpu_case_config(c);
  FUSEDMOE_REQUIRE_BACKEND(cutlass_grouped(), config);
  const MoeWeights weights = random_weights(config, 31);
  const Tensor hidden_a = random_hidden(config, c.tokens, 32), hidden_b = random_hidden(config, c.tokens, 33);
  const testing::Routing routing_a =
      testing::make_routing(config, c.tokens, RoutingPattern::router, 34, weights, hidden_a);
  const testing::Routing routing_b =
      testing::make_routing(config, c.tokens, RoutingPattern::skip_last, 35, weights, hidden_b);
  testing::BuiltKernel built = testing::build_kernel(cutlass_grouped(), config, testing::weights_on(weights));
  built.kernel->reserve(c.tokens);
  testing::TestStream stream;
  const Tensor input = testing::to_device(hidden_a), gpu_ids = testing::to_device(routing_a.ids);
  const Tensor gpu_weights = testing::to_device(routing_a.weights);

  // Eager, on the stream, for both inputs.
  struct Inputs {
    const Tensor* hidden;
    const testing::Routing* routing;
  };
  const Inputs a{&hidden_a, &routing_a}, b{&hidden_b, &routing_b};
  auto load = [&](const Inputs& inputs) {
    copy_tensor(*inputs.hidden, input);  // new contents, same buffers: the graph reads them on replay
    copy_tensor(inputs.routing->ids, gpu_ids);
    copy_tensor(inputs.routing->weights, gpu_weights);
  };
  const Tensor eager = testing::empty_poisoned(DType::bf16, {c.tokens, c.hidden});
  Tensor eager_results[2];
  for (int run = 0; run < 2; ++run) {
    load(run == 0 ? a : b);
    built.kernel->forward(input, gpu_ids, gpu_weights, {}, *built.weights, eager, stream.context());
    stream.synchronize();
    eager_results[run] = testing::to_host(eager);
  }

  const Tensor replayed = testing::empty_poisoned(DType::bf16, {c.tokens, c.hidden});
  cudaGraphExec_t graph = testing::capture_graph(stream.get(), [&] {
    built.kernel->forward(input, gpu_ids, gpu_weights, {}, *built.weights, replayed, stream.context());
  });
  for (int run : {0, 1, 0}) {
    testing::poison(replayed, stream.get());
    load(run == 0 ? a : b);
    testing::check_cuda(cudaGraphLaunch(graph, stream.get()), "cudaGraphLaunch");
    stream.synchronize();
    EXPECT_TRUE(testing::bitwise_equal(testing::to_host(replayed), eager_results[run])) << "replay " << run;
  }
  cudaGraphExecDestroy(graph);
  const std::vector<double> reference =
      fp64_moe_reference(config, weights, hidden_a, routing_a.ids, routing_a.weights);
  EXPECT_LE(compare_to_reference(eager_results[0], reference).relative_error, tolerance_for(DType::bf16));
}

TEST(CudaCutlassGroupedSupports, StatesWhatItCannotDo) {
  const BackendInfo& backend = cutlass_grouped();
  const Platform platform = testing::synthetic_h100();
  MoeConfig config = testing::make_config(8, 2, 64, 32);
  config.device = kGpu;
  const Support hopper = backend.supports(config, platform, ActivationFormat::standard);
  if (!hopper.ok && hopper.reason.starts_with("built without")) GTEST_SKIP() << hopper.reason;
  EXPECT_TRUE(hopper.ok) << hopper.reason;

  MoeConfig odd_hidden = testing::make_config(8, 2, 60, 32);
  odd_hidden.device = kGpu;
  EXPECT_EQ(
      backend.supports(odd_hidden, platform, ActivationFormat::standard).reason,
      "needs hidden_size and intermediate_size multiples of 8 (16-byte rows for TMA); got hidden_size 60, "
      "intermediate_size 32");
  MoeConfig odd_intermediate = testing::make_config(8, 2, 64, 36);
  odd_intermediate.device = kGpu;
  EXPECT_FALSE(backend.supports(odd_intermediate, platform, ActivationFormat::standard).ok);

  for (int capability : {80, 89, 100}) {
    Platform other = platform;
    other.cuda.compute_capability = capability;
    const Support support = backend.supports(config, other, ActivationFormat::standard);
    EXPECT_FALSE(support.ok);
    EXPECT_NE(support.reason.find("needs compute capability 9.0"), std::string::npos) << support.reason;
    EXPECT_NE(support.reason.find("sm_" + std::to_string(capability)), std::string::npos) << support.reason;
  }
  EXPECT_EQ(backend.supports(config, platform, ActivationFormat::batched).reason,
            "consumes the standard format; the dispatch delivers batched");
  MoeConfig fp16 = config;
  fp16.weight_dtype = fp16.act_dtype = DType::fp16;
  EXPECT_EQ(backend.supports(fp16, platform, ActivationFormat::standard).reason,
            "needs bf16 weights; weight_dtype is fp16");
  Platform none = platform;
  none.cuda = CudaInfo{};
  none.cuda.reason = "synthetic";
  EXPECT_EQ(backend.supports(config, none, ActivationFormat::standard).reason, "no CUDA device: synthetic");
  MoeConfig on_cpu = config;
  on_cpu.device = Device::cpu();
  EXPECT_FALSE(backend.supports(on_cpu, platform, ActivationFormat::standard).ok);
}

}  // namespace
}  // namespace fusedmoe
