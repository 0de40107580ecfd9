// FusedMoeLayer: the user-facing flow (set_weights -> finalize_weights -> forward) end to end.
#include <gtest/gtest.h>

#include "layer/router_gate.hpp"
#include "testing/moe_case.hpp"
#include "testing/scoped_env.hpp"

namespace fusedmoe {
namespace {

template <class Call>
void expect_error(Call&& call, const std::string& fragment) {
  try {
    call();
    ADD_FAILURE() << "no exception; expected one mentioning '" << fragment << "'";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos) << error.what();
  }
}

// Runs the layer from hidden states only, and checks it against fp64 with the routing it reports.
void check_layer(const MoeConfig& config, std::int64_t tokens,
                 const std::optional<std::string>& backend = {}) {
  FusedMoeLayer layer(config, LayerOptions::with_backend(backend));
  const MoeWeights weights = random_weights(config, 11);
  layer.set_weights(weights);
  layer.finalize_weights();
  testing::expect_layer_matches_reference(layer, weights, random_hidden(config, tokens, 12));
}

TEST(FusedMoeLayer, SharedExpertsWithSigmoidGate) {
  MoeConfig config = testing::make_config(12, 3, 64, 32, DType::fp32, DType::fp32);
  config.routing.recipe = RoutingRecipe::softmax_topk;
  config.shared = {.count = 1, .intermediate_size = 48, .sigmoid_gate = true};
  check_layer(config, 19);
  config.shared = {.count = 2, .intermediate_size = 24, .sigmoid_gate = false};
  check_layer(config, 7);
  config.act_dtype = config.weight_dtype = DType::bf16;
  check_layer(config, 7, "cpu_reference_monolithic");
}

TEST(FusedMoeLayer, DeepSeekStyleGroupedRoutingWithBias) {
  MoeConfig config = testing::make_config(16, 4, 48, 24, DType::fp32, DType::fp32);
  config.routing = {.recipe = RoutingRecipe::sigmoid_grouped_bias,
                    .top_k = 4,
                    .num_groups = 4,
                    .topk_group = 2,
                    .renormalize = true,
                    .routed_scaling_factor = 2.5f,
                    .use_correction_bias = true};
  config.shared = {.count = 1, .intermediate_size = 24};
  check_layer(config, 23);
  check_layer(config, 23, "cpu_reference_monolithic");
}

TEST(FusedMoeLayer, Llama4AppliesTheWeightToTheInput) {
  MoeConfig config = testing::make_config(16, 1, 32, 24, DType::fp32, DType::fp32);
  config.routing = {.recipe = RoutingRecipe::llama4_top1_sigmoid, .top_k = 1};
  config.shared = {.count = 1, .intermediate_size = 32};
  check_layer(config, 9);
  check_layer(config, 9, "cpu_reference_monolithic");
  config.parallel.dispatch = DispatchMode::local_batched;
  check_layer(config, 9);
}

TEST(FusedMoeLayer, ForwardWithCallerLogitsMatchesForwardWithGate) {
  const MoeConfig config = testing::make_config(8, 2, 32, 16);
  FusedMoeLayer layer(config);
  const MoeWeights weights = random_weights(config, 1);
  layer.set_weights(weights);
  layer.finalize_weights();
  const Tensor hidden = random_hidden(config, 6, 2);
  const Tensor logits = Tensor::empty(DType::fp32, {6, 8});
  layer.compute_router_logits(hidden, logits);
  const Tensor a = testing::expect_layer_matches_reference(layer, weights, hidden);
  const Tensor b = Tensor::empty(DType::bf16, {6, 32});
  fill_nan(b);
  layer.forward(hidden, logits, b);
  EXPECT_TRUE(testing::bitwise_equal(a, b));
}

TEST(FusedMoeLayer, ErrorsNameWhatWasWrong) {
  const MoeConfig config = testing::make_config(8, 2, 32, 16);
  FusedMoeLayer layer(config);
  const Tensor hidden = random_hidden(config, 3, 2);
  const Tensor out = Tensor::empty(DType::bf16, {3, 32});
  expect_error([&] { layer.finalize_weights(); }, "before set_weights");
  MoeWeights weights = random_weights(config, 1);
  layer.set_weights(weights);
  expect_error([&] { layer.forward(hidden, out); }, "before finalize_weights");
  expect_error([&] { (void)layer.selection(); }, "before finalize_weights");
  layer.finalize_weights();
  expect_error([&] { layer.forward(hidden, Tensor::empty(DType::fp32, {3, 32})); }, "out dtype");
  expect_error([&] { layer.forward(Tensor::empty(DType::bf16, {3, 33}), out); }, "hidden shape");
  expect_error(
      [&] {
        layer.forward(hidden, Tensor::zeros(DType::fp32, {3, 7}), out);
      },
      "router_logits shape");

  MoeWeights bad = weights;
  bad.w13 = Tensor::empty(DType::bf16, {8, 30, 32});
  expect_error([&] { layer.set_weights(bad); }, "w13 shape: expected [8, 32, 32], got [8, 30, 32]");
  bad = weights;
  bad.w2 = weights.w2.to_dtype(DType::fp32);
  expect_error([&] { layer.set_weights(bad); }, "w2 dtype: expected bf16, got fp32");
  bad = weights;
  bad.correction_bias = Tensor::zeros(DType::fp32, {8});
  expect_error([&] { layer.set_weights(bad); }, "use_correction_bias = false");
  bad = weights;
  bad.shared_w13 = weights.w13;
  expect_error([&] { layer.set_weights(bad); }, "shared.count = 0");

  // A backend's own conversion checks the canonical weights against the config too (callers of
  // BackendInfo::convert_weights skip the layer's checks): reading them would otherwise run out of bounds.
  const BackendInfo& reference = *find_backend("cpu_reference");
  expect_error(
      [&] {
        (void)reference.convert_weights(Tensor::empty(DType::bf16, {8, 16, 32}), weights.w2, config);
      },
      "w13 shape: expected [8, 32, 32], got [8, 16, 32]");
  expect_error(
      [&] { (void)reference.convert_weights(weights.w13, weights.w2.to_dtype(DType::fp32), config); },
      "w2 dtype: expected bf16, got fp32");
}

// A moved-from layer refuses every call with a message (its state went to the new layer), and works again
// once assigned a new one.
TEST(FusedMoeLayer, MovedFromLayerSaysSo) {
  const MoeConfig config = testing::make_config(8, 2, 32, 16);
  FusedMoeLayer layer(config);
  layer.set_weights(random_weights(config, 1));
  layer.finalize_weights();
  FusedMoeLayer moved(std::move(layer));
  EXPECT_TRUE(moved.finalized());
  const Tensor hidden = random_hidden(config, 3, 2);
  const Tensor out = Tensor::empty(DType::bf16, {3, 32});
  // NOLINTBEGIN(bugprone-use-after-move): the point of the test
  expect_error([&] { (void)layer.finalized(); }, "moved from");
  expect_error([&] { (void)layer.config(); }, "moved from");
  expect_error([&] { layer.forward(hidden, out); }, "moved from");
  expect_error([&] { layer.reserve(4); }, "moved from");
  layer = FusedMoeLayer(config);
  EXPECT_FALSE(layer.finalized());
  // NOLINTEND(bugprone-use-after-move)
  moved.forward(hidden, out);
}

// A finalize_weights() that fails leaves the layer unfinalized (not half built): here the shared experts'
// forced backend cannot serve them (they take top-k ids in the standard format), after the routed experts
// were built. The message names the shared experts.
TEST(FusedMoeLayer, FailedFinalizeLeavesTheLayerUnfinalized) {
  MoeConfig config = testing::make_config(8, 2, 32, 16, DType::fp32, DType::fp32);
  config.shared = {.count = 1, .intermediate_size = 16};
  for (const auto& [forced, why] : {std::pair<const char*, const char*>{"cpu_reference_batched", "batched"},
                                    {"cpu_reference_monolithic", "this caller needs modular ones"}}) {
    SCOPED_TRACE(forced);
    LayerOptions options;
    options.shared_experts_backend = forced;
    FusedMoeLayer layer(config, options);
    layer.set_weights(random_weights(config, 1));
    expect_error([&] { layer.finalize_weights(); }, "[layer] shared experts: ");
    expect_error([&] { layer.finalize_weights(); }, why);
    EXPECT_FALSE(layer.finalized());
    expect_error(
        [&] {
          layer.forward(random_hidden(config, 2, 3), Tensor::empty(DType::fp32, {2, 32}));
        },
        "before finalize_weights");
  }
}

// The shared experts take top-k ids: only modular backends of the standard format serve them.
// FUSEDMOE_BACKEND, meant for the routed experts, forces them only where it can (before, a monolithic or
// batched-only FUSEDMOE_BACKEND failed every forward or the finalize).
TEST(FusedMoeLayer, SharedExpertsRunOnModularBackendsOnly) {
  MoeConfig config = testing::make_config(8, 2, 32, 16, DType::fp32, DType::fp32);
  config.shared = {.count = 1, .intermediate_size = 24};
  for (const char* routed : {"cpu_reference_monolithic", "cpu_reference_batched", "cpu_reference"}) {
    SCOPED_TRACE(routed);
    const testing::ScopedEnv env("FUSEDMOE_BACKEND", routed);
    MoeConfig layer_config = config;
    if (std::string_view(routed) == "cpu_reference_batched") {
      layer_config.parallel.dispatch = DispatchMode::local_batched;
    }
    FusedMoeLayer layer(layer_config);
    const MoeWeights weights = random_weights(layer_config, 2);
    layer.set_weights(weights);
    layer.finalize_weights();
    EXPECT_EQ(layer.selection().backend->id, routed);
    EXPECT_EQ(layer.shared_experts_selection()->backend->kind, ExpertsKind::modular);
    if (std::string_view(routed) == "cpu_reference") {
      EXPECT_TRUE(layer.shared_experts_selection()->overridden);
    }
    testing::expect_layer_matches_reference(layer, weights, random_hidden(layer_config, 5, 3));
  }
}

// forward() in place (out is hidden) with shared experts: the shared experts read the input, not the routed
// output written over it; the same bits as out of place.
TEST(FusedMoeLayer, InPlaceForwardWithSharedExpertsMatchesOutOfPlace) {
  MoeConfig config = testing::make_config(8, 2, 32, 16, DType::fp32, DType::fp32);
  config.shared = {.count = 1, .intermediate_size = 24, .sigmoid_gate = true};
  FusedMoeLayer layer(config, LayerOptions::with_backend("cpu_reference"));
  layer.set_weights(random_weights(config, 4));
  layer.finalize_weights();
  const Tensor hidden = random_hidden(config, 5, 6);
  const Tensor out = Tensor::empty(DType::fp32, {5, 32});
  layer.forward(hidden, out);
  const Tensor in_place = Tensor::copy_of(hidden);
  layer.forward(in_place, in_place);
  EXPECT_TRUE(testing::bitwise_equal(in_place, out));
}

TEST(FusedMoeLayer, ZeroTokensAndOneToken) {
  const MoeConfig config = testing::make_config(8, 2, 32, 16);
  FusedMoeLayer layer(config);
  layer.set_weights(random_weights(config, 1));
  layer.finalize_weights();
  layer.forward(Tensor::empty(DType::bf16, {0, 32}), Tensor::empty(DType::bf16, {0, 32}));
  check_layer(config, 1);
}

TEST(MoeConfig, RejectsBadValuesWithClearMessages) {
  const MoeConfig good = testing::make_config(8, 2, 32, 16);
  auto expect_bad = [&](auto edit, const std::string& fragment) {
    MoeConfig config = good;
    edit(config);
    expect_error([&] { config.validate(); }, fragment);
  };
  expect_bad([](MoeConfig& c) { c.num_experts = 0; }, "num_experts = 0");
  expect_bad([](MoeConfig& c) { c.hidden_size = -4; }, "hidden_size = -4");
  expect_bad([](MoeConfig& c) { c.intermediate_size = 0; }, "intermediate_size = 0");
  expect_bad([](MoeConfig& c) { c.routing.top_k = 9; }, "top_k = 9: expected 1 <= top_k <= num_experts = 8");
  expect_bad([](MoeConfig& c) { c.act_dtype = DType::int32; }, "act_dtype = int32");
  expect_bad([](MoeConfig& c) { c.routing.num_groups = 2; }, "is not grouped");
  expect_bad(
      [](MoeConfig& c) {
        c.routing = {.recipe = RoutingRecipe::softmax_grouped, .top_k = 2, .num_groups = 3, .topk_group = 1};
      },
      "num_groups = 3: expected a divisor of num_experts = 8");
  expect_bad([](MoeConfig& c) { c.routing.routed_scaling_factor = 0.0f; }, "routed_scaling_factor");
  expect_bad([](MoeConfig& c) { c.shared.count = 1; }, "shared.intermediate_size = 0");
  expect_bad([](MoeConfig& c) { c.shared.sigmoid_gate = true; }, "shared.count = 0");
  expect_bad([](MoeConfig& c) { c.parallel.ep_rank = 3; }, "ep_rank = 3");
  expect_bad([](MoeConfig& c) { c.parallel.batched_capacity = 0; }, "batched_capacity = 0");
  expect_bad([](MoeConfig& c) { c.parallel.batched_capacity = std::int64_t{1} << 31; },
             "expected 1 to 2^31 - 1");
  expect_bad(
      [](MoeConfig& c) {
        c.hidden_size = std::int64_t{1} << 40;
        c.parallel = {.dispatch = DispatchMode::local_batched, .batched_capacity = std::int64_t{1} << 30};
      },
      "would overflow a 64-bit byte count");
  expect_bad([](MoeConfig& c) { c.device = Device{DeviceKind::cpu, 1}; }, "the CPU is device index 0");
}

TEST(RouterGate, LinearMatchesDirectSum) {
  const Tensor hidden = Tensor::empty(DType::bf16, {3, 5});
  fill_normal(hidden, 1, 1.0f);
  const Tensor weight = Tensor::empty(DType::fp32, {2, 5});
  fill_normal(weight, 2, 1.0f);
  const Tensor out = Tensor::empty(DType::fp32, {3, 2});
  linear_fp32(hidden, weight, out, 2);
  for (int t = 0; t < 3; ++t) {
    for (int r = 0; r < 2; ++r) {
      double sum = 0;
      for (int c = 0; c < 5; ++c)
        sum += bf16_to_float(hidden.data_as<std::uint16_t>()[t * 5 + c]) * weight.data_as<float>()[r * 5 + c];
      EXPECT_NEAR(out.data_as<float>()[t * 2 + r], sum, 1e-5);
    }
  }
}

}  // namespace
}  // namespace fusedmoe
