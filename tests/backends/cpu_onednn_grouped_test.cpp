// cpu_onednn_grouped: what the conformance suite does not cover. The weights are reordered once and
// the packed copy is all a forward reads; 1 and 2 threads agree bit for bit (task-parallel and
// GEMM-parallel schedules alike); a larger shape against fp64; and the reasons supports() gives.
#include <gtest/gtest.h>

#include "testing/moe_case.hpp"

namespace fusedmoe {
namespace {

using testing::RoutingPattern;

constexpr std::string_view kId = "cpu_onednn_grouped";
constexpr std::string_view kNotBuilt = "built without oneDNN";

const BackendInfo& backend() {
  const BackendInfo* info = find_backend(kId);
  EXPECT_NE(info, nullptr) << "cpu_onednn_grouped is not registered";
  return *info;
}

Platform platform_with_isa(CpuIsa isa) {
  Platform platform;
  platform.cpu.isa = isa;
  return platform;
}

// The reason the backend cannot run `config` on this machine, or "" when it can.
std::string unsupported_here(const MoeConfig& config) {
  const Support support = backend().supports(config, Platform::detect(), dispatch_format(config));
  return support.ok ? std::string() : support.reason;
}

#define SKIP_UNLESS_SUPPORTED(config)                                           \
  do {                                                                          \
    if (const std::string reason = unsupported_here(config); !reason.empty()) { \
      GTEST_SKIP() << "cpu_onednn_grouped does not run here: " << reason;       \
    }                                                                           \
  } while (0)

// One forward of `built` on a fixed random batch.
Tensor forward(testing::BuiltKernel& built, const MoeConfig& config, const Tensor& hidden,
               const testing::Routing& routing, const TensorView& expert_map, int num_threads) {
  const Tensor out = Tensor::empty(config.act_dtype, {hidden.size(0), config.hidden_size});
  fill_nan(out);
  built.kernel->forward(hidden, routing.ids, routing.weights, expert_map, *built.weights, out,
                        ExecContext{.num_threads = num_threads});
  return out;
}

TEST(CpuOnednnGrouped, SupportsStatesEachLimitWithTheValue) {
  const MoeConfig config = testing::make_config(8, 2, 64, 32);
  const Platform bf16_cpu = platform_with_isa(CpuIsa::avx512_bf16);
  const Support base = backend().supports(config, bf16_cpu, ActivationFormat::standard);
  if (!base.ok) {
    // Built without oneDNN: every answer is the same, and says how to get it.
    EXPECT_NE(base.reason.find(kNotBuilt), std::string::npos) << base.reason;
    EXPECT_NE(base.reason.find("libdnnl-dev"), std::string::npos) << base.reason;
    GTEST_SKIP() << "built without oneDNN: " << base.reason;
  }
  auto reason = [&](const MoeConfig& changed, const Platform& platform, ActivationFormat format) {
    const Support support = backend().supports(changed, platform, format);
    EXPECT_FALSE(support.ok);
    return support.reason;
  };
  EXPECT_EQ(reason(config, platform_with_isa(CpuIsa::avx512), ActivationFormat::standard),
            "needs AVX512_BF16 (oneDNN's bf16 matmul); this CPU's level is avx512");
  EXPECT_EQ(reason(config, platform_with_isa(CpuIsa::avx2), ActivationFormat::standard),
            "needs AVX512_BF16 (oneDNN's bf16 matmul); this CPU's level is avx2");
  EXPECT_EQ(reason(testing::make_config(8, 2, 64, 32, DType::fp16, DType::fp16), bf16_cpu,
                   ActivationFormat::standard),
            "needs bf16 weights, got fp16");
  EXPECT_EQ(reason(testing::make_config(8, 2, 64, 32, DType::fp32, DType::fp32), bf16_cpu,
                   ActivationFormat::standard),
            "needs bf16 weights, got fp32");
  EXPECT_EQ(reason(testing::make_config(8, 2, 64, 32, DType::fp32, DType::bf16), bf16_cpu,
                   ActivationFormat::standard),
            "needs bf16 activations (oneDNN's bf16 matmul takes bf16 inputs), got fp32");
  EXPECT_EQ(reason(config, bf16_cpu, ActivationFormat::batched),
            "consumes the standard format; the dispatch delivers batched");
  MoeConfig on_gpu = config;
  on_gpu.device = Device::cuda(0);
  EXPECT_EQ(reason(on_gpu, bf16_cpu, ActivationFormat::standard), "runs on the CPU; config device is cuda:0");
  // Both activations run.
  EXPECT_TRUE(backend()
                  .supports(testing::make_config(8, 2, 64, 32, DType::bf16, DType::bf16, Activation::gelu),
                            bf16_cpu, ActivationFormat::standard)
                  .ok);
}

TEST(CpuOnednnGrouped, WeightsAreReorderedOnceAndTheCanonicalCopyIsNotReadAgain) {
  const MoeConfig config = testing::make_config(8, 2, 96, 64);
  SKIP_UNLESS_SUPPORTED(config);
  MoeWeights weights = random_weights(config, 11);
  // Canonical weights the test may overwrite after conversion.
  weights.w13 = weights.w13.clone();
  weights.w2 = weights.w2.clone();
  testing::BuiltKernel built = testing::build_kernel(backend(), config, weights);
  const std::int64_t tokens = 45;
  const Tensor hidden = random_hidden(config, tokens, 12);
  const testing::Routing routing =
      testing::make_routing(config, tokens, RoutingPattern::router, 13, weights, hidden);
  const Tensor first = forward(built, config, hidden, routing, {}, 1);
  const std::vector<double> reference =
      fp64_moe_reference(config, weights, hidden, routing.ids, routing.weights, {});

  // The converted weights are a copy: the canonical tensors can go (here: turn to NaN).
  fill_nan(weights.w13);
  fill_nan(weights.w2);
  const Tensor again = forward(built, config, hidden, routing, {}, 1);
  EXPECT_TRUE(testing::bitwise_equal(first, again))
      << "a second forward with the same converted weights differs";

  // A second kernel sharing the converted weights (what layers with one conversion do) agrees too.
  testing::BuiltKernel shared;
  shared.weights = built.weights;
  shared.kernel =
      std::make_unique<MoeKernel>(config, make_prepare_finalize(config), backend().make_experts(config));
  EXPECT_TRUE(testing::bitwise_equal(first, forward(shared, config, hidden, routing, {}, 2)));

  const ErrorStats stats = compare_to_reference(first, reference);
  EXPECT_EQ(stats.non_finite, 0);
  EXPECT_LE(stats.relative_error, tolerance_for(DType::bf16));
}

TEST(CpuOnednnGrouped, OneAndTwoThreadsAndChunkingAreBitwiseIdentical) {
  const MoeConfig config = testing::make_config(16, 2, 128, 96);
  SKIP_UNLESS_SUPPORTED(config);
  const MoeWeights weights = random_weights(config, 21);
  testing::BuiltKernel whole = testing::build_kernel(backend(), config, weights, 0);
  testing::BuiltKernel chunked = testing::build_kernel(backend(), config, weights, 5);
  // 1 and 2 tokens: fewer tasks than 2 per thread, so each GEMM runs on both threads; larger batches:
  // many tasks, one per thread at a time; 300 tokens on one expert: pieces of that expert side by side.
  struct Case {
    std::int64_t tokens;
    RoutingPattern pattern;
  };
  for (const Case& c : {Case{1, RoutingPattern::router}, Case{2, RoutingPattern::one_hot_expert},
                        Case{7, RoutingPattern::router}, Case{64, RoutingPattern::skip_last},
                        Case{300, RoutingPattern::one_hot_expert}}) {
    SCOPED_TRACE("tokens " + std::to_string(c.tokens));
    const Tensor hidden = random_hidden(config, c.tokens, 22);
    const testing::Routing routing = testing::make_routing(config, c.tokens, c.pattern, 23, weights, hidden);
    const Tensor one = forward(whole, config, hidden, routing, {}, 1);
    const Tensor two = forward(whole, config, hidden, routing, {}, 2);
    const Tensor chunked_two = forward(chunked, config, hidden, routing, {}, 2);
    EXPECT_TRUE(testing::bitwise_equal(one, two)) << "2 threads differ from 1 thread";
    EXPECT_TRUE(testing::bitwise_equal(one, chunked_two)) << "chunks of 5 tokens on 2 threads differ";
  }
}

struct LargeCase {
  std::string label;
  Activation activation;
  RoutingPattern pattern;
  bool expert_map;
};

class CpuOnednnGroupedLarge : public ::testing::TestWithParam<LargeCase> {};

TEST_P(CpuOnednnGroupedLarge, MatchesFp64Reference) {
  const LargeCase& c = GetParam();
  const MoeConfig config = testing::make_config(16, 4, 512, 384, DType::bf16, DType::bf16, c.activation);
  SKIP_UNLESS_SUPPORTED(config);
  const MoeWeights weights = random_weights(config, 31);
  const std::int64_t tokens = 200;
  const Tensor hidden = random_hidden(config, tokens, 32);
  const testing::Routing routing = testing::make_routing(config, tokens, c.pattern, 33, weights, hidden);
  Tensor expert_map;
  if (c.expert_map) {  // experts 3, 7, 11, 15 are on another rank
    expert_map = Tensor::empty(DType::int32, {config.num_experts});
    for (std::int64_t expert = 0; expert < config.num_experts; ++expert) {
      expert_map.data_as<std::int32_t>()[expert] = expert % 4 == 3 ? -1 : static_cast<std::int32_t>(expert);
    }
  }
  testing::BuiltKernel built = testing::build_kernel(backend(), config, weights);
  const Tensor out = forward(built, config, hidden, routing, expert_map, 0);
  const std::vector<double> reference =
      fp64_moe_reference(config, weights, hidden, routing.ids, routing.weights, expert_map);
  const ErrorStats stats = compare_to_reference(out, reference);
  EXPECT_EQ(stats.non_finite, 0) << "outputs left unwritten (still NaN) or overflowed";
  EXPECT_LE(stats.relative_error, tolerance_for(DType::bf16)) << "max abs error " << stats.max_abs_error;
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CpuOnednnGroupedLarge,
    ::testing::Values(LargeCase{"silu", Activation::silu, RoutingPattern::router, false},
                      LargeCase{"gelu", Activation::gelu, RoutingPattern::router, false},
                      LargeCase{"hot_expert", Activation::silu, RoutingPattern::one_hot_expert, false},
                      LargeCase{"expert_map", Activation::silu, RoutingPattern::router, true}),
    [](const auto& info) { return info.param.label; });

}  // namespace
}  // namespace fusedmoe
