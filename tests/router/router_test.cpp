// The router against an independent fp64 implementation of each recipe, plus its tie, NaN and
// error rules.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <numeric>

#include "core/random.hpp"
#include "fusedmoe/fusedmoe.hpp"

namespace fusedmoe {
namespace {

struct Expected {
  std::vector<std::int32_t> ids;
  std::vector<double> weights;
};

// Sorts indices by (value desc, index asc) among `eligible` ones and keeps k.
std::vector<std::int32_t> best(const std::vector<double>& values, const std::vector<bool>& eligible, int k) {
  std::vector<std::int32_t> order;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (eligible.empty() || eligible[i]) order.push_back(static_cast<std::int32_t>(i));
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](std::int32_t a, std::int32_t b) { return values[a] > values[b]; });
  order.resize(k);
  return order;
}

// fp64 restatement of each recipe, written from the recipes' definitions (not from router.cpp).
Expected reference_row(const std::vector<double>& logits, const RoutingConfig& routing,
                       const std::vector<double>& bias) {
  const std::size_t experts = logits.size();
  const int k = routing.top_k;
  auto softmax = [](std::vector<double> v) {
    const double m = *std::max_element(v.begin(), v.end());
    double s = 0;
    for (double& x : v) s += (x = std::exp(x - m));
    for (double& x : v) x /= s;
    return v;
  };
  Expected result;
  std::vector<double> scores, selection;
  std::vector<bool> eligible;
  bool renormalize = false;
  switch (routing.recipe) {
    case RoutingRecipe::softmax_topk:
    case RoutingRecipe::softmax_topk_renorm:
      scores = softmax(logits);
      result.ids = best(scores, {}, k);
      renormalize = routing.recipe == RoutingRecipe::softmax_topk_renorm;
      break;
    case RoutingRecipe::topk_softmax: {
      result.ids = best(logits, {}, k);
      std::vector<double> chosen;
      for (std::int32_t id : result.ids) chosen.push_back(logits[id]);
      chosen = softmax(chosen);
      result.weights = chosen;
      break;
    }
    case RoutingRecipe::softmax_grouped:
    case RoutingRecipe::sigmoid_grouped_bias: {
      const bool sigmoid = routing.recipe == RoutingRecipe::sigmoid_grouped_bias;
      if (sigmoid) {
        for (double x : logits) scores.push_back(1.0 / (1.0 + std::exp(-x)));
      } else {
        scores = softmax(logits);
      }
      selection = scores;
      if (!bias.empty()) {
        for (std::size_t e = 0; e < experts; ++e) selection[e] += bias[e];
      }
      const std::size_t group_size = experts / routing.num_groups;
      std::vector<double> group_score(routing.num_groups);
      for (int g = 0; g < routing.num_groups; ++g) {
        std::vector<double> members(selection.begin() + g * group_size,
                                    selection.begin() + (g + 1) * group_size);
        std::sort(members.rbegin(), members.rend());
        group_score[g] = (!bias.empty() && members.size() >= 2) ? members[0] + members[1] : members[0];
      }
      const std::vector<std::int32_t> groups = best(group_score, {}, routing.topk_group);
      eligible.assign(experts, false);
      for (std::int32_t g : groups) {
        for (std::size_t i = 0; i < group_size; ++i) eligible[g * group_size + i] = true;
      }
      result.ids = best(selection, eligible, k);
      renormalize = routing.renormalize;
      break;
    }
    case RoutingRecipe::llama4_top1_sigmoid:
      result.ids = best(logits, {}, 1);
      result.weights = {1.0 / (1.0 + std::exp(-logits[result.ids[0]]))};
      break;
  }
  if (result.weights.empty()) {
    for (std::int32_t id : result.ids) result.weights.push_back(scores[id]);
  }
  if (renormalize) {
    const double sum = std::accumulate(result.weights.begin(), result.weights.end(), 0.0);
    for (double& w : result.weights) w /= sum;
  }
  for (double& w : result.weights) w *= routing.routed_scaling_factor;
  return result;
}

struct RouterCase {
  std::string label;
  std::int64_t experts;
  RoutingConfig routing;
};

class RouterRecipes : public ::testing::TestWithParam<RouterCase> {};

TEST_P(RouterRecipes, MatchFp64Restatement) {
  const RouterCase& c = GetParam();
  const std::int64_t tokens = 61;
  const Tensor logits = Tensor::empty(DType::fp32, {tokens, c.experts});
  fill_normal(logits, 1234, 1.5f);
  Tensor bias;
  std::vector<double> bias_values;
  if (c.routing.use_correction_bias) {
    bias = Tensor::empty(DType::fp32, {c.experts});
    fill_uniform(bias, 77, 0.0f, 0.3f);
    for (std::int64_t e = 0; e < c.experts; ++e) bias_values.push_back(bias.data_as<float>()[e]);
  }
  const int k = c.routing.top_k;
  const Tensor ids = Tensor::empty(DType::int32, {tokens, k});
  const Tensor weights = Tensor::empty(DType::fp32, {tokens, k});
  route(logits, c.routing, bias, ids, weights);
  for (std::int64_t t = 0; t < tokens; ++t) {
    std::vector<double> row(logits.data_as<float>() + t * c.experts,
                            logits.data_as<float>() + (t + 1) * c.experts);
    const Expected expected = reference_row(row, c.routing, bias_values);
    for (int slot = 0; slot < k; ++slot) {
      ASSERT_EQ(ids.data_as<std::int32_t>()[t * k + slot], expected.ids[slot])
          << "token " << t << " slot " << slot;
      EXPECT_NEAR(weights.data_as<float>()[t * k + slot], expected.weights[slot],
                  2e-6 * c.routing.routed_scaling_factor)
          << "token " << t << " slot " << slot;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Recipes, RouterRecipes,
    ::testing::Values(
        RouterCase{"softmax_topk", 64, {.recipe = RoutingRecipe::softmax_topk, .top_k = 8}},
        RouterCase{"softmax_topk_renorm", 128, {.recipe = RoutingRecipe::softmax_topk_renorm, .top_k = 8}},
        RouterCase{"softmax_topk_renorm_k1", 7, {.recipe = RoutingRecipe::softmax_topk_renorm, .top_k = 1}},
        RouterCase{"softmax_topk_all", 5, {.recipe = RoutingRecipe::softmax_topk_renorm, .top_k = 5}},
        RouterCase{"topk_softmax", 8, {.recipe = RoutingRecipe::topk_softmax, .top_k = 2}},
        RouterCase{"softmax_grouped",
                   64,
                   {.recipe = RoutingRecipe::softmax_grouped,
                    .top_k = 6,
                    .num_groups = 8,
                    .topk_group = 3,
                    .routed_scaling_factor = 16.0f}},
        RouterCase{"sigmoid_grouped_bias",
                   256,
                   {.recipe = RoutingRecipe::sigmoid_grouped_bias,
                    .top_k = 8,
                    .num_groups = 8,
                    .topk_group = 4,
                    .renormalize = true,
                    .routed_scaling_factor = 2.5f,
                    .use_correction_bias = true}},
        RouterCase{
            "sigmoid_no_bias_one_group", 48, {.recipe = RoutingRecipe::sigmoid_grouped_bias, .top_k = 4}},
        RouterCase{"llama4", 16, {.recipe = RoutingRecipe::llama4_top1_sigmoid, .top_k = 1}}),
    [](const auto& info) { return info.param.label; });

TEST(Router, TiesGoToTheLowerExpertId) {
  const Tensor logits = Tensor::zeros(DType::fp32, {1, 6});
  logits.data_as<float>()[4] = 1.0f;
  const Tensor ids = Tensor::empty(DType::int32, {1, 3});
  const Tensor weights = Tensor::empty(DType::fp32, {1, 3});
  route(logits, {.recipe = RoutingRecipe::softmax_topk, .top_k = 3}, {}, ids, weights);
  EXPECT_EQ(ids.data_as<std::int32_t>()[0], 4);
  EXPECT_EQ(ids.data_as<std::int32_t>()[1], 0);
  EXPECT_EQ(ids.data_as<std::int32_t>()[2], 1);
}

TEST(Router, GroupTiesGoToTheLowerGroupId) {
  // Four groups of two with equal scores everywhere: groups 0 and 1 win, then experts 0..3.
  const Tensor logits = Tensor::zeros(DType::fp32, {1, 8});
  const Tensor ids = Tensor::empty(DType::int32, {1, 4});
  const Tensor weights = Tensor::empty(DType::fp32, {1, 4});
  route(logits, {.recipe = RoutingRecipe::softmax_grouped, .top_k = 4, .num_groups = 4, .topk_group = 2}, {},
        ids, weights);
  for (int slot = 0; slot < 4; ++slot) EXPECT_EQ(ids.data_as<std::int32_t>()[slot], slot);
}

TEST(Router, NonFiniteLogitsGiveValidIdsAndFiniteWeights) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<std::vector<float>> rows = {
      {nan, nan, nan, nan}, {inf, 0.0f, inf, -inf}, {-inf, -inf, -inf, -inf}, {nan, 1.0f, -inf, inf}};
  for (RoutingRecipe recipe : {RoutingRecipe::softmax_topk, RoutingRecipe::softmax_topk_renorm,
                               RoutingRecipe::topk_softmax, RoutingRecipe::sigmoid_grouped_bias}) {
    const Tensor logits = Tensor::empty(DType::fp32, {4, 4});
    for (int r = 0; r < 4; ++r) std::copy(rows[r].begin(), rows[r].end(), logits.data_as<float>() + 4 * r);
    const Tensor ids = Tensor::empty(DType::int32, {4, 2});
    const Tensor weights = Tensor::empty(DType::fp32, {4, 2});
    RoutingConfig routing{.recipe = recipe, .top_k = 2};
    if (recipe == RoutingRecipe::sigmoid_grouped_bias) routing.renormalize = true;
    route(logits, routing, {}, ids, weights);
    for (int i = 0; i < 8; ++i) {
      EXPECT_GE(ids.data_as<std::int32_t>()[i], 0);
      EXPECT_LT(ids.data_as<std::int32_t>()[i], 4);
      EXPECT_TRUE(std::isfinite(weights.data_as<float>()[i])) << to_string(recipe) << " entry " << i;
    }
    // Row 3 picks +inf (3) first. Selecting on logits or sigmoids, 1.0 (1) comes next and NaN ranks below
    // every number; a softmax underflows every other entry to 0, and the tie goes to the lower id (0).
    EXPECT_EQ(ids.data_as<std::int32_t>()[6], 3);
    const bool softmax_first =
        recipe == RoutingRecipe::softmax_topk || recipe == RoutingRecipe::softmax_topk_renorm;
    EXPECT_EQ(ids.data_as<std::int32_t>()[7], softmax_first ? 0 : 1) << to_string(recipe);
  }
}

TEST(Router, Bf16LogitsAreAccepted) {
  const Tensor logits = Tensor::empty(DType::bf16, {3, 8});
  fill_normal(logits, 5, 1.0f);
  const Tensor ids = Tensor::empty(DType::int32, {3, 2});
  const Tensor weights = Tensor::empty(DType::fp32, {3, 2});
  route(logits, {.recipe = RoutingRecipe::softmax_topk_renorm, .top_k = 2}, {}, ids, weights);
  for (int t = 0; t < 3; ++t)
    EXPECT_NEAR(weights.data_as<float>()[2 * t] + weights.data_as<float>()[2 * t + 1], 1.0f, 1e-6);
}

void expect_invalid(const std::function<void()>& call, const std::string& fragment) {
  try {
    call();
    ADD_FAILURE() << "no exception; expected one mentioning '" << fragment << "'";
  } catch (const InvalidArgument& error) {
    EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos) << error.what();
  }
}

TEST(Router, RejectsBadArgumentsWithClearMessages) {
  const Tensor logits = Tensor::zeros(DType::fp32, {2, 8});
  const Tensor ids = Tensor::empty(DType::int32, {2, 2});
  const Tensor weights = Tensor::empty(DType::fp32, {2, 2});
  const RoutingConfig good{.recipe = RoutingRecipe::softmax_topk, .top_k = 2};
  expect_invalid(
      [&] { route(logits, {.recipe = RoutingRecipe::softmax_topk, .top_k = 9}, {}, ids, weights); },
      "top_k = 9");
  expect_invalid(
      [&] {
        route(logits, good, {}, Tensor::empty(DType::int32, {2, 3}), weights);
      },
      "topk_ids shape");
  expect_invalid(
      [&] {
        route(logits, good, {}, Tensor::empty(DType::int64, {2, 2}), weights);
      },
      "topk_ids dtype");
  expect_invalid(
      [&] {
        route(Tensor::zeros(DType::int32, {2, 8}), good, {}, ids, weights);
      },
      "router_logits dtype");
  expect_invalid(
      [&] {
        route(logits,
              {.recipe = RoutingRecipe::softmax_grouped, .top_k = 2, .num_groups = 3, .topk_group = 1}, {},
              ids, weights);
      },
      "num_groups = 3");
  expect_invalid(
      [&] {
        route(logits,
              {.recipe = RoutingRecipe::softmax_grouped, .top_k = 2, .num_groups = 4, .topk_group = 5}, {},
              ids, weights);
      },
      "topk_group = 5");
  expect_invalid(
      [&] {
        route(logits,
              {.recipe = RoutingRecipe::sigmoid_grouped_bias, .top_k = 2, .use_correction_bias = true}, {},
              ids, weights);
      },
      "correction_bias");
  expect_invalid(
      [&] { route(logits, {.recipe = RoutingRecipe::llama4_top1_sigmoid, .top_k = 2}, {}, ids, weights); },
      "needs top_k = 1");
}

}  // namespace
}  // namespace fusedmoe
