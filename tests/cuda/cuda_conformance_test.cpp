// The CUDA twin of tests/backends/conformance_test.cpp: every registered CUDA backend whose supports()
// accepts a case runs on the GPU against the fp64 reference. Capabilities come from the registry (a new
// CUDA backend is covered by adding it there), never from a second list.
#include <gtest/gtest.h>

#include <iostream>
#include <sstream>

#include "cuda/cuda_testing.hpp"

namespace fusedmoe {
namespace {

using testing::kGpu;
using testing::RoutingPattern;

struct ConformanceCase {
  std::string label;
  std::int64_t tokens, experts, hidden, intermediate;
  int top_k;
  DType act_dtype = DType::bf16;
  DType weight_dtype = DType::bf16;
  Activation activation = Activation::silu;
  RoutingPattern pattern = RoutingPattern::router;
  bool expert_map = false;  // odd experts are not local (-1)
  std::int64_t max_chunk = 8192;

  std::string describe() const {
    std::ostringstream text;
    text << label << "(M=" << tokens << ",E=" << experts << ",k=" << top_k << ",H=" << hidden
         << ",I=" << intermediate << "," << to_string(act_dtype) << "/" << to_string(weight_dtype) << ","
         << to_string(activation) << (expert_map ? ",map" : "") << ",chunk=" << max_chunk << ")";
    return text.str();
  }
};

void PrintTo(const ConformanceCase& c, std::ostream* os) {
  *os << c.describe();
}

std::vector<ConformanceCase> cases() {
  return {
      {"decode_m1", 1, 8, 64, 32, 2},
      {"odd_sizes", 37, 16, 67, 29, 4},
      {"k1", 23, 8, 48, 24, 1},
      {"k_equals_e", 11, 4, 40, 20, 4},
      {"e256", 129, 256, 64, 32, 8},
      {"zero_token_expert", 19, 8, 32, 16, 3, DType::bf16, DType::bf16, Activation::silu,
       RoutingPattern::skip_last},
      {"all_on_one_expert", 21, 8, 32, 16, 2, DType::bf16, DType::bf16, Activation::silu,
       RoutingPattern::one_hot_expert},
      {"all_on_one_expert_k1", 13, 6, 32, 16, 1, DType::bf16, DType::bf16, Activation::silu,
       RoutingPattern::one_hot_expert},
      {"expert_map", 29, 10, 40, 24, 3, DType::bf16, DType::bf16, Activation::silu, RoutingPattern::router,
       true},
      {"fp32", 17, 8, 64, 40, 2, DType::fp32, DType::fp32},
      {"fp16", 17, 8, 64, 40, 2, DType::fp16, DType::fp16},
      {"fp32_act_bf16_weights", 9, 8, 32, 24, 2, DType::fp32, DType::bf16},
      {"gelu", 15, 8, 48, 40, 2, DType::bf16, DType::bf16, Activation::gelu},
      {"chunked", 70, 8, 32, 16, 2, DType::bf16, DType::bf16, Activation::silu, RoutingPattern::router, false,
       16},
      {"prefill", 1500, 32, 128, 64, 4},
      {"empty_batch", 0, 8, 32, 16, 2},
  };
}

class CudaConformance : public ::testing::TestWithParam<ConformanceCase> {};

TEST_P(CudaConformance, EveryCudaBackendMatchesFp64Reference) {
  FUSEDMOE_REQUIRE_CUDA();
  const ConformanceCase& c = GetParam();
  const Platform platform = Platform::detect(kGpu);
  int checked = 0, checked_batched = 0;
  for (DispatchMode mode : {DispatchMode::local, DispatchMode::local_batched}) {
    MoeConfig config = testing::make_config(c.experts, c.top_k, c.hidden, c.intermediate, c.act_dtype,
                                            c.weight_dtype, c.activation);
    config.device = kGpu;
    config.parallel.dispatch = mode;
    const MoeWeights weights = random_weights(config, 7);
    const MoeWeights gpu_weights = testing::weights_on(weights);
    const Tensor hidden = random_hidden(config, c.tokens, 8);
    Tensor expert_map;
    if (c.expert_map) {
      expert_map = Tensor::empty(DType::int32, {c.experts});
      for (std::int64_t e = 0; e < c.experts; ++e) {
        expert_map.data_as<std::int32_t>()[e] = e % 2 ? -1 : static_cast<std::int32_t>(e);
      }
    }
    for (const Candidate& candidate : evaluate_backends(config, platform)) {
      const BackendInfo& backend = *candidate.backend;
      if (!candidate.support.ok) {
        std::cout << "  " << backend.id << " [" << to_string(mode)
                  << "]: skipped: " << candidate.support.reason << "\n";
        continue;
      }
      const bool monolithic = backend.kind == ExpertsKind::monolithic;
      if (monolithic && (c.pattern != RoutingPattern::router || c.expert_map)) continue;  // routes by itself
      SCOPED_TRACE(backend.id + " [" + std::string(to_string(mode)) + "] " + c.describe());
      testing::BuiltKernel built = testing::build_kernel(backend, config, gpu_weights, c.max_chunk);
      const Tensor out = testing::empty_poisoned(config.act_dtype, {c.tokens, config.hidden_size});
      testing::Routing routing;
      if (monolithic) {
        const Tensor logits = Tensor::empty(DType::fp32, {c.tokens, c.experts});
        if (c.tokens > 0) fill_normal(logits, 99, 2.0f);
        routing = {Tensor::empty(DType::int32, {c.tokens, c.top_k}),
                   Tensor::empty(DType::fp32, {c.tokens, c.top_k})};
        route(logits, config.routing, {}, routing.ids, routing.weights);
        built.kernel->forward_monolithic(testing::to_device(hidden), testing::to_device(logits), {},
                                         *built.weights, out);
      } else {
        routing = testing::make_routing(config, c.tokens, c.pattern, 42, weights, hidden);
        built.kernel->forward(testing::to_device(hidden), testing::to_device(routing.ids),
                              testing::to_device(routing.weights), testing::to_device(expert_map),
                              *built.weights, out);
      }
      const std::vector<double> reference =
          fp64_moe_reference(config, weights, hidden, routing.ids, routing.weights, expert_map);
      const ErrorStats stats = compare_to_reference(testing::to_host(out), reference);
      EXPECT_EQ(stats.non_finite, 0) << "outputs left unwritten (still NaN) or overflowed";
      EXPECT_LE(stats.relative_error, tolerance_for(config.act_dtype))
          << "max abs error " << stats.max_abs_error;
      ++checked;
      checked_batched += mode == DispatchMode::local_batched;
    }
  }
  if (checked == 0) std::cout << "  no CUDA backend supports " << c.describe() << " on this device\n";
  // Every CUDA build has a bf16 backend on sm_80+ for the standard format (cuda_fused) and for the batched
  // format of local_batched, whose dispatch then runs on the device too (cuda_batched).
  if (c.act_dtype == DType::bf16 && c.weight_dtype == DType::bf16 && platform.cuda.compute_capability >= 80) {
    EXPECT_GE(checked, 2) << "no CUDA backend ran the bf16 case " << c.describe();
    EXPECT_GE(checked_batched, 1) << "no CUDA backend ran the bf16 case " << c.describe() << " batched";
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, CudaConformance, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.label; });

// Chunking must not change a single bit on the GPU either (in both formats: the batched slabs' capacity,
// and with it cuda_batched's tile, follows the chunk).
TEST(CudaConformance, ChunkingIsBitwiseInvisible) {
  FUSEDMOE_REQUIRE_CUDA();
  MoeConfig base = testing::make_config(8, 2, 48, 32);
  base.device = kGpu;
  const MoeWeights weights = random_weights(base, 3);
  const std::int64_t tokens = 53;
  const Tensor hidden = random_hidden(base, tokens, 4);
  const testing::Routing routing =
      testing::make_routing(base, tokens, RoutingPattern::router, 5, weights, hidden);
  const Tensor gpu_hidden = testing::to_device(hidden), gpu_ids = testing::to_device(routing.ids);
  const Tensor gpu_routing_weights = testing::to_device(routing.weights);
  for (DispatchMode mode : {DispatchMode::local, DispatchMode::local_batched}) {
    MoeConfig config = base;
    config.parallel.dispatch = mode;
    for (const Candidate& candidate : evaluate_backends(config, Platform::detect(kGpu))) {
      if (!candidate.support.ok || candidate.backend->kind != ExpertsKind::modular) continue;
      SCOPED_TRACE(candidate.backend->id + " [" + std::string(to_string(mode)) + "]");
      testing::BuiltKernel whole =
          testing::build_kernel(*candidate.backend, config, testing::weights_on(weights), 0);
      testing::BuiltKernel chunked =
          testing::build_kernel(*candidate.backend, config, testing::weights_on(weights), 7);
      const Tensor a = testing::empty_poisoned(config.act_dtype, {tokens, config.hidden_size});
      const Tensor b = testing::empty_poisoned(config.act_dtype, {tokens, config.hidden_size});
      whole.kernel->forward(gpu_hidden, gpu_ids, gpu_routing_weights, {}, *whole.weights, a);
      chunked.kernel->forward(gpu_hidden, gpu_ids, gpu_routing_weights, {}, *chunked.weights, b);
      const Tensor whole_out = testing::to_host(a);
      EXPECT_TRUE(testing::bitwise_equal(whole_out, testing::to_host(b))) << "chunked differs from whole";
      // Both untouched would compare equal too: the whole run must be the MoE.
      const ErrorStats stats = compare_to_reference(
          whole_out, fp64_moe_reference(base, weights, hidden, routing.ids, routing.weights));
      EXPECT_EQ(stats.non_finite, 0);
      EXPECT_LE(stats.relative_error, tolerance_for(base.act_dtype));
    }
  }
}

}  // namespace
}  // namespace fusedmoe
