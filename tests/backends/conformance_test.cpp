// Every registered CPU backend whose supports() accepts a case, against the fp64 reference, on the
// edge cases that break MoE kernels. Capabilities come from the registry itself, never a second list.
#include <gtest/gtest.h>

#include <sstream>

#include "testing/moe_case.hpp"

namespace fusedmoe {
namespace {

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

std::vector<ConformanceCase> cases() {
  return {
      {"decode_m1", 1, 8, 64, 32, 2},
      {"odd_sizes", 37, 16, 67, 29, 4},
      {"k1", 23, 8, 48, 24, 1},
      {"k_equals_e", 11, 4, 40, 20, 4},
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
      {"gelu", 15, 8, 48, 40, 2, DType::fp32, DType::fp32, Activation::gelu},
      {"chunked", 70, 8, 32, 16, 2, DType::bf16, DType::bf16, Activation::silu, RoutingPattern::router, false,
       16},
      {"empty_batch", 0, 8, 32, 16, 2},
  };
}

class Conformance : public ::testing::TestWithParam<ConformanceCase> {};

TEST_P(Conformance, EveryCpuBackendMatchesFp64Reference) {
  const ConformanceCase& c = GetParam();
  int checked = 0;
  for (DispatchMode mode : {DispatchMode::local, DispatchMode::local_batched}) {
    MoeConfig config = testing::make_config(c.experts, c.top_k, c.hidden, c.intermediate, c.act_dtype,
                                            c.weight_dtype, c.activation);
    config.parallel.dispatch = mode;
    const MoeWeights weights = random_weights(config, 7);
    const Tensor hidden = random_hidden(config, c.tokens, 8);
    Tensor expert_map;
    if (c.expert_map) {
      expert_map = Tensor::empty(DType::int32, {c.experts});
      for (std::int64_t e = 0; e < c.experts; ++e)
        expert_map.data_as<std::int32_t>()[e] = e % 2 ? -1 : static_cast<std::int32_t>(e);
    }
    for (const Candidate& candidate : evaluate_backends(config, Platform::detect())) {
      const BackendInfo& backend = *candidate.backend;
      if (!candidate.support.ok) {
        std::cout << "  " << backend.id << " [" << to_string(mode)
                  << "]: skipped: " << candidate.support.reason << "\n";
        continue;
      }
      const bool monolithic = backend.kind == ExpertsKind::monolithic;
      if (monolithic && (c.pattern != RoutingPattern::router || c.expert_map)) continue;  // routes by itself
      SCOPED_TRACE(backend.id + " [" + std::string(to_string(mode)) + "] " + c.describe());
      testing::BuiltKernel built = testing::build_kernel(backend, config, weights, c.max_chunk);
      const Tensor out = Tensor::empty(config.act_dtype, {c.tokens, config.hidden_size});
      if (c.tokens > 0) fill_nan(out);

      testing::Routing routing;
      if (monolithic) {
        const Tensor logits = Tensor::empty(DType::fp32, {c.tokens, c.experts});
        if (c.tokens > 0) fill_normal(logits, 99, 2.0f);
        routing = {Tensor::empty(DType::int32, {c.tokens, c.top_k}),
                   Tensor::empty(DType::fp32, {c.tokens, c.top_k})};
        route(logits, config.routing, {}, routing.ids, routing.weights);
        built.kernel->forward_monolithic(hidden, logits, {}, *built.weights, out);
      } else {
        routing = testing::make_routing(config, c.tokens, c.pattern, 42, weights, hidden);
        built.kernel->forward(hidden, routing.ids, routing.weights, expert_map, *built.weights, out);
      }
      const std::vector<double> reference =
          fp64_moe_reference(config, weights, hidden, routing.ids, routing.weights, expert_map);
      const ErrorStats stats = compare_to_reference(out, reference);
      EXPECT_EQ(stats.non_finite, 0) << "outputs left unwritten (still NaN) or overflowed";
      EXPECT_LE(stats.relative_error, tolerance_for(config.act_dtype))
          << "max abs error " << stats.max_abs_error;
      ++checked;
    }
  }
  EXPECT_GE(checked, 2) << "every case must exercise the standard and the batched format";
}

INSTANTIATE_TEST_SUITE_P(Cases, Conformance, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.label; });

// Chunking and thread counts must not change a single bit.
TEST(Conformance, ChunkingAndThreadCountsAreBitwiseIdentical) {
  for (DispatchMode mode : {DispatchMode::local, DispatchMode::local_batched}) {
    MoeConfig config = testing::make_config(8, 2, 48, 32);
    config.parallel.dispatch = mode;
    const MoeWeights weights = random_weights(config, 3);
    const std::int64_t tokens = 53;
    const Tensor hidden = random_hidden(config, tokens, 4);
    const testing::Routing routing =
        testing::make_routing(config, tokens, RoutingPattern::router, 5, weights, hidden);
    for (const Candidate& candidate : evaluate_backends(config, Platform::detect())) {
      if (!candidate.support.ok || candidate.backend->kind != ExpertsKind::modular) continue;
      SCOPED_TRACE(candidate.backend->id);
      testing::BuiltKernel whole = testing::build_kernel(*candidate.backend, config, weights, 0);
      testing::BuiltKernel chunked = testing::build_kernel(*candidate.backend, config, weights, 7);
      const Tensor a = Tensor::empty(config.act_dtype, {tokens, config.hidden_size});
      const Tensor b = Tensor::empty(config.act_dtype, {tokens, config.hidden_size});
      const Tensor c = Tensor::empty(config.act_dtype, {tokens, config.hidden_size});
      for (const Tensor& out : {a, b, c}) fill_nan(out);  // outputs left unwritten cannot compare equal
      whole.kernel->forward(hidden, routing.ids, routing.weights, {}, *whole.weights, a,
                            ExecContext{.num_threads = 1});
      chunked.kernel->forward(hidden, routing.ids, routing.weights, {}, *chunked.weights, b,
                              ExecContext{.num_threads = 2});
      whole.kernel->forward(hidden, routing.ids, routing.weights, {}, *whole.weights, c,
                            ExecContext{.num_threads = 2});
      const ErrorStats stats =
          compare_to_reference(a, fp64_moe_reference(config, weights, hidden, routing.ids, routing.weights));
      EXPECT_EQ(stats.non_finite, 0);
      EXPECT_LE(stats.relative_error, tolerance_for(config.act_dtype));
      EXPECT_TRUE(testing::bitwise_equal(a, b)) << "chunked / 2 threads differs from whole / 1 thread";
      EXPECT_TRUE(testing::bitwise_equal(a, c)) << "2 threads differs from 1 thread";
    }
  }
}

}  // namespace
}  // namespace fusedmoe
