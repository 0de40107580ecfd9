// cuda_fused's persistent decode path (kernels/persistent_decode.cuh: the layer in one launch, M * k <= 64,
// Hopper) against the fp64 reference on the edge cases of its work split, and the counters it must leave at
// zero for the next forward.
#include <gtest/gtest.h>

#include <span>
#include <string>
#include <vector>

#include "backends/cuda_common/cuda_check.hpp"
#include "backends/cuda_fused/kernels/launch.hpp"
#include "cuda/gpu_case_testing.hpp"

namespace fusedmoe {
namespace {

using testing::GpuCase;
using testing::GpuIds;
using testing::kGpu;
using testing::RoutingPattern;

bool persistent_runs_here() {
  const cuda::DeviceAttributes& device = cuda::device_attributes(0);
  return cuda_fused::persistent_path_available(device.compute_capability,
                                               device.shared_memory_per_block_optin);
}

#define FUSEDMOE_REQUIRE_PERSISTENT()                                                                        \
  do {                                                                                                       \
    FUSEDMOE_REQUIRE_CUDA();                                                                                 \
    if (!persistent_runs_here())                                                                             \
      GTEST_SKIP() << "the persistent path needs compute capability 9.0, sm_90a code and its shared memory"; \
  } while (false)

// Every case has M * k <= 64, so it runs on the persistent kernel (checked), with one to eight token
// fragments per expert. Small shapes leave most warps of the grid without a box; the large ones cut units
// (a 32-row group x all k-panels) between warps, whose partial sums the last one adds.
std::vector<GpuCase> persistent_cases() {
  std::vector<GpuCase> cases = {
      {"m1", 1, 8, 64, 32, 2},
      {"m1_k8_e128", 1, 128, 256, 96, 8},
      {"qwen3_shaped", 2, 16, 2048, 768, 8},  // 16 pairs, units cut between warps
      {"wide", 8, 8, 1024, 512, 4},
      {"odd_sizes", 5, 16, 67, 29, 4},  // H, I no multiple of anything: padded hidden rows, zero-padded tails
      {"odd_hidden", 7, 8, 36, 24, 2},
      {"zero_token_expert", 9, 8, 32, 16, 3, Activation::silu, RoutingPattern::skip_last},
      {"all_on_one_expert", 21, 8, 32, 16, 2, Activation::silu, RoutingPattern::one_hot_expert},
      {"all_on_one_expert_k1", 64, 6, 48, 40, 1, Activation::silu,
       RoutingPattern::one_hot_expert},  // 8 frags
      {"expert_map", 9, 10, 40, 24, 3, Activation::silu, RoutingPattern::router, true},
      {"expert_map_wide", 6, 32, 512, 256, 8, Activation::silu, RoutingPattern::router, true},
      {"duplicate_ids", 12, 12, 64, 48, 3, Activation::silu, RoutingPattern::router, false,
       GpuIds::duplicates},
      {"out_of_range_ids", 13, 8, 64, 32, 3, Activation::silu, RoutingPattern::router, false,
       GpuIds::out_of_range},
      {"gelu", 15, 8, 48, 40, 2, Activation::gelu},
      {"e256_64_pairs", 8, 256, 128, 64, 8},
      {"cpu_weights", 3, 8, 96, 40, 2, Activation::silu, RoutingPattern::router, false, GpuIds::pattern,
       true},
  };
  std::uint64_t state = 77;
  auto next = [&](std::int64_t low, std::int64_t high) {
    state = mix64(state);
    return low + static_cast<std::int64_t>(state % static_cast<std::uint64_t>(high - low + 1));
  };
  for (int index = 0; index < 10; ++index) {
    GpuCase c;
    c.label = "random_" + std::to_string(index);
    c.experts = next(2, 160);
    c.top_k = static_cast<int>(next(1, std::min<std::int64_t>(8, c.experts)));
    c.tokens = next(1, 64 / c.top_k);
    c.hidden = next(8, 1200);
    c.intermediate = next(8, 700);
    c.activation = index % 3 == 2 ? Activation::gelu : Activation::silu;
    c.expert_map = index % 4 == 3;
    cases.push_back(c);
  }
  return cases;
}

// As testing::expect_matches_reference_and_repeats (every output written, within bf16 tolerance of fp64, two
// runs bitwise equal), and every token's row on its own within the tolerance too: a unit's partial sum lost
// or added twice changes 16-32 columns of one row, which the whole output's norm could hide.
void expect_rows_match_reference(const GpuCase& c) {
  SCOPED_TRACE(c.describe());
  const BackendInfo& backend = testing::registered_backend("cuda_fused");
  const MoeConfig config = testing::gpu_case_config(c);
  const MoeWeights weights = random_weights(config, 7);
  const Tensor hidden = random_hidden(config, c.tokens, 8);
  const testing::GpuCaseRouting routing = testing::gpu_case_routing(c, config, weights, hidden);
  const Tensor map = c.expert_map ? testing::odd_experts_not_local(c.experts) : Tensor();
  testing::BuiltKernel built =
      testing::build_kernel(backend, config, c.cpu_weights ? weights : testing::weights_on(weights));
  const Tensor gpu_hidden = testing::to_device(hidden), gpu_ids = testing::to_device(routing.ids);
  const Tensor gpu_weights = testing::to_device(routing.weights), gpu_map = testing::to_device(map);
  const Tensor first = testing::empty_poisoned(DType::bf16, {c.tokens, c.hidden});
  built.kernel->forward(gpu_hidden, gpu_ids, gpu_weights, gpu_map, *built.weights, first);
  const Tensor out = testing::to_host(first);

  const std::vector<double> reference =
      fp64_moe_reference(config, weights, hidden, routing.reference_ids, routing.reference_weights, map);
  const ErrorStats stats = compare_to_reference(out, reference);
  EXPECT_EQ(stats.non_finite, 0) << "outputs left unwritten (still NaN) or overflowed";
  EXPECT_LE(stats.relative_error, tolerance_for(DType::bf16)) << "max abs error " << stats.max_abs_error;
  // A row has fewer elements to average its rounding over: twice the tolerance, still far below what a lost
  // 32-column part does to a row (~12% of a 2048-wide row, more of a narrow one).
  for (std::int64_t token = 0; token < c.tokens; ++token) {
    const std::span<const double> row(reference.data() + token * c.hidden,
                                      static_cast<std::size_t>(c.hidden));
    EXPECT_LE(compare_to_reference(out.view().slice_rows(token, token + 1), row).relative_error,
              2 * tolerance_for(DType::bf16))
        << "token " << token;
  }

  const Tensor second = testing::empty_poisoned(DType::bf16, {c.tokens, c.hidden});
  built.kernel->forward(gpu_hidden, gpu_ids, gpu_weights, gpu_map, *built.weights, second);
  EXPECT_TRUE(testing::bitwise_equal(out, testing::to_host(second))) << "two runs differ";
}

class CudaFusedPersistent : public ::testing::TestWithParam<GpuCase> {};

TEST_P(CudaFusedPersistent, MatchesFp64ReferenceAndIsBitwiseRepeatable) {
  FUSEDMOE_REQUIRE_PERSISTENT();
  const GpuCase& c = GetParam();
  const cuda::DeviceAttributes& device = cuda::device_attributes(0);
  ASSERT_TRUE(cuda_fused::persistent_path_fits(c.tokens, c.top_k, device.compute_capability,
                                               device.shared_memory_per_block_optin))
      << "the case must run on the persistent kernel, not fall back";
  const testing::ScopedEnv path("FUSEDMOE_CUDA_FUSED_PATH", "persistent");
  expect_rows_match_reference(c);
}

INSTANTIATE_TEST_SUITE_P(Cases, CudaFusedPersistent, ::testing::ValuesIn(persistent_cases()),
                         [](const auto& info) { return info.param.label; });

// Every shape (box rows x warps per block) with one and four boxes requested ahead per warp: within
// the reference's tolerance and repeatable (a shape whose accumulators do not fit the batch's token fragments
// runs the first shape instead).
TEST(CudaFusedPersistentShapes, EveryShapeAndLookaheadMatchTheReference) {
  FUSEDMOE_REQUIRE_PERSISTENT();
  const testing::ScopedEnv path("FUSEDMOE_CUDA_FUSED_PATH", "persistent");
  const GpuCase cases[] = {
      {"qwen3_shaped", 2, 16, 2048, 768, 8},
      {"all_on_one_expert_k1", 64, 6, 48, 40, 1, Activation::silu, RoutingPattern::one_hot_expert},
      {"odd_sizes_map", 5, 16, 67, 29, 4, Activation::gelu, RoutingPattern::router, true},
      {"odd_hidden_two_fragments", 2, 16, 1000, 200, 8},  // 128-row boxes: H no multiple of the box
  };
  for (const std::string& shape : cuda_fused::persistent_shape_names()) {
    for (const char* ahead : {"1", "4"}) {
      SCOPED_TRACE("shape " + shape + ", " + ahead + " ahead");
      const testing::ScopedEnv forced("FUSEDMOE_CUDA_FUSED_PERSISTENT_SHAPE", shape.c_str());
      const testing::ScopedEnv lookahead("FUSEDMOE_CUDA_FUSED_PERSISTENT_AHEAD", ahead);
      for (const GpuCase& c : cases) expect_rows_match_reference(c);
    }
  }
}

// One Experts object through batches of every size and routing in a row: each equals a fresh object's
// result bit for bit, so no forward leaves a counter behind for the next (a stale unit or column counter
// would finish a unit early and write wrong sums; a stale expert counter would let GEMM2 read the
// intermediate before it is written).
TEST(CudaFusedPersistentCounters, EveryForwardLeavesThemAtZero) {
  FUSEDMOE_REQUIRE_PERSISTENT();
  const testing::ScopedEnv path("FUSEDMOE_CUDA_FUSED_PATH", "persistent");
  const GpuCase c{"counters", 16, 24, 320, 192, 4};
  const MoeConfig config = testing::gpu_case_config(c);
  const BackendInfo& backend = testing::registered_backend("cuda_fused");
  const MoeWeights host_weights = random_weights(config, 3);
  const MoeWeights weights = testing::weights_on(host_weights);
  testing::BuiltKernel reused = testing::build_kernel(backend, config, weights);
  int round = 0;
  for (std::int64_t tokens : {1, 16, 3, 9, 1, 16, 2}) {
    SCOPED_TRACE("M=" + std::to_string(tokens) + ", round " + std::to_string(round));
    const Tensor hidden = random_hidden(config, tokens, 100 + round);
    const testing::Routing routing =
        testing::make_routing(config, tokens, RoutingPattern::router, 200 + round, weights, hidden);
    const Tensor gpu_hidden = testing::to_device(hidden), gpu_ids = testing::to_device(routing.ids);
    const Tensor gpu_weights = testing::to_device(routing.weights);
    const Tensor got = testing::empty_poisoned(DType::bf16, {tokens, c.hidden});
    reused.kernel->forward(gpu_hidden, gpu_ids, gpu_weights, {}, *reused.weights, got);
    testing::BuiltKernel fresh = testing::build_kernel(backend, config, weights);
    const Tensor expected = testing::empty_poisoned(DType::bf16, {tokens, c.hidden});
    fresh.kernel->forward(gpu_hidden, gpu_ids, gpu_weights, {}, *fresh.weights, expected);
    const Tensor got_host = testing::to_host(got);
    EXPECT_TRUE(testing::bitwise_equal(got_host, testing::to_host(expected)));
    // And both are the MoE, not two untouched outputs.
    const ErrorStats stats = compare_to_reference(
        got_host, fp64_moe_reference(config, host_weights, hidden, routing.ids, routing.weights));
    EXPECT_EQ(stats.non_finite, 0);
    EXPECT_LE(stats.relative_error, tolerance_for(DType::bf16));
    ++round;
  }
}

// No pair names a local expert (all odd experts, which the map says live elsewhere): the output is zeros
// (it starts as NaN), and the next forward, with local experts, is still right.
TEST(CudaFusedPersistentCounters, NothingLocalWritesZeros) {
  FUSEDMOE_REQUIRE_PERSISTENT();
  const testing::ScopedEnv path("FUSEDMOE_CUDA_FUSED_PATH", "persistent");
  const GpuCase c{"nothing_local", 3, 4, 64, 32, 2, Activation::silu, RoutingPattern::router, true};
  const MoeConfig config = testing::gpu_case_config(c);
  const BackendInfo& backend = testing::registered_backend("cuda_fused");
  const MoeWeights weights = random_weights(config, 5);
  testing::BuiltKernel built = testing::build_kernel(backend, config, testing::weights_on(weights));
  const Tensor map = testing::odd_experts_not_local(c.experts);
  const Tensor hidden = random_hidden(config, c.tokens, 6);
  Tensor ids = Tensor::empty(DType::int32, {c.tokens, c.top_k});
  Tensor routing_weights = Tensor::empty(DType::fp32, {c.tokens, c.top_k});
  for (std::int64_t i = 0; i < c.tokens * c.top_k; ++i) {
    ids.data_as<std::int32_t>()[i] = i % 2 ? 1 : 3;
    routing_weights.data_as<float>()[i] = 0.5f;
  }
  const Tensor gpu_hidden = testing::to_device(hidden), gpu_map = testing::to_device(map);
  const Tensor out = testing::empty_poisoned(DType::bf16, {c.tokens, c.hidden});
  built.kernel->forward(gpu_hidden, testing::to_device(ids), testing::to_device(routing_weights), gpu_map,
                        *built.weights, out);
  const Tensor host = testing::to_host(out);
  for (std::int64_t i = 0; i < c.tokens * c.hidden; ++i) {
    ASSERT_EQ(host.data_as<std::uint16_t>()[i] & 0x7fffu, 0u) << "element " << i << " is not zero";
  }
  for (std::int64_t i = 0; i < c.tokens * c.top_k; ++i) ids.data_as<std::int32_t>()[i] = i % 2 ? 1 : 2;
  const Tensor second = testing::empty_poisoned(DType::bf16, {c.tokens, c.hidden});
  built.kernel->forward(gpu_hidden, testing::to_device(ids), testing::to_device(routing_weights), gpu_map,
                        *built.weights, second);
  const std::vector<double> reference =
      fp64_moe_reference(config, weights, hidden, ids, routing_weights, map);
  EXPECT_LE(compare_to_reference(testing::to_host(second), reference).relative_error,
            tolerance_for(DType::bf16));
}

}  // namespace
}  // namespace fusedmoe
