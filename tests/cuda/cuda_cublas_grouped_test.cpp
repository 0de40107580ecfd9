// cuda_cublas_grouped against the fp64 reference on the grouped-GEMM edge cases (any H and I); determinism;
// the clear refusal inside CUDA-graph capture; what supports() declines and why.
#include <gtest/gtest.h>

#include "cuda/gpu_case_testing.hpp"

namespace fusedmoe {
namespace {

using testing::GpuCase;
using testing::kGpu;
using testing::RoutingPattern;

const BackendInfo& cublas_grouped() {
  return testing::registered_backend("cuda_cublas_grouped");
}

class CudaCublasGrouped : public ::testing::TestWithParam<GpuCase> {};

TEST_P(CudaCublasGrouped, MatchesFp64ReferenceAndIsBitwiseRepeatable) {
  FUSEDMOE_REQUIRE_CUDA();
  testing::expect_matches_reference_and_repeats(cublas_grouped(), GetParam());
}

INSTANTIATE_TEST_SUITE_P(Cases, CudaCublasGrouped, ::testing::ValuesIn(testing::grouped_cases()),
                         [](const auto& info) { return info.param.label; });

// The group sizes go to cuBLAS on the host, so a forward reads them back and waits: inside a capture it must
// refuse with a reason naming the capturable backends (and leave the capture to be ended by the caller).
TEST(CudaCublasGroupedGraph, CaptureIsRefusedClearly) {
  FUSEDMOE_REQUIRE_CUDA();
  const GpuCase c{"graph", 40, 8, 64, 32, 2};
  const MoeConfig config = testing::gpu_case_config(c);
  FUSEDMOE_REQUIRE_BACKEND(cublas_grouped(), config);
  const MoeWeights weights = random_weights(config, 51);
  const Tensor hidden = random_hidden(config, c.tokens, 52);
  const testing::Routing routing =
      testing::make_routing(config, c.tokens, RoutingPattern::router, 53, weights, hidden);
  testing::BuiltKernel built = testing::build_kernel(cublas_grouped(), config, testing::weights_on(weights));
  built.kernel->reserve(c.tokens);
  testing::TestStream stream;
  const Tensor gpu_hidden = testing::to_device(hidden), gpu_ids = testing::to_device(routing.ids);
  const Tensor gpu_weights = testing::to_device(routing.weights);
  const Tensor out = testing::empty_poisoned(DType::bf16, {c.tokens, c.hidden});
  try {
    cudaGraphExec_t graph = testing::capture_graph(stream.get(), [&] {
      built.kernel->forward(gpu_hidden, gpu_ids, gpu_weights, {}, *built.weights, out, stream.context());
    });
    cudaGraphExecDestroy(graph);
    ADD_FAILURE() << "capture succeeded; expected Unsupported";
  } catch (const Unsupported& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("CUDA graph capture"), std::string::npos) << message;
    EXPECT_NE(message.find("cuda_fused"), std::string::npos) << message;
    EXPECT_NE(message.find("cuda_cutlass_grouped"), std::string::npos) << message;
  }
  // The stream is usable again after the refused capture, and an eager run still works.
  built.kernel->forward(gpu_hidden, gpu_ids, gpu_weights, {}, *built.weights, out, stream.context());
  stream.synchronize();
  const ErrorStats stats = compare_to_reference(
      testing::to_host(out), fp64_moe_reference(config, weights, hidden, routing.ids, routing.weights));
  EXPECT_EQ(stats.non_finite, 0);
  EXPECT_LE(stats.relative_error, tolerance_for(DType::bf16));
}

TEST(CudaCublasGroupedSupports, StatesWhatItCannotDo) {
  const BackendInfo& backend = cublas_grouped();
  const Platform platform = testing::synthetic_h100();
  MoeConfig config = testing::make_config(8, 2, 67, 29);  // any H and I
  config.device = kGpu;
  EXPECT_TRUE(backend.supports(config, platform, ActivationFormat::standard).ok);
  Platform ampere = platform;
  ampere.cuda.compute_capability = 80;
  EXPECT_TRUE(backend.supports(config, ampere, ActivationFormat::standard).ok);
  Platform turing = platform;
  turing.cuda.compute_capability = 75;
  const Support old = backend.supports(config, turing, ActivationFormat::standard);
  EXPECT_FALSE(old.ok);
  EXPECT_NE(old.reason.find("sm_75"), std::string::npos) << old.reason;
  EXPECT_EQ(backend.supports(config, platform, ActivationFormat::batched).reason,
            "consumes the standard format; the dispatch delivers batched");
  MoeConfig fp32 = config;
  fp32.weight_dtype = fp32.act_dtype = DType::fp32;
  EXPECT_EQ(backend.supports(fp32, platform, ActivationFormat::standard).reason,
            "needs bf16 weights; weight_dtype is fp32");
  MoeConfig expert_parallel = config;
  expert_parallel.parallel.ep_size = 2;
  expert_parallel.parallel.dispatch = DispatchMode::all2all;  // standard format, global ids + expert map
  EXPECT_TRUE(backend.supports(expert_parallel, platform, ActivationFormat::standard).ok);
  MoeConfig on_cpu = config;
  on_cpu.device = Device::cpu();
  EXPECT_FALSE(backend.supports(on_cpu, platform, ActivationFormat::standard).ok);
}

}  // namespace
}  // namespace fusedmoe
