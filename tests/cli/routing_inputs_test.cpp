// The routing patterns bench and tune time with: distinct experts per token, normalised weights, and the
// balanced pattern's exact per-expert counts.
#include "cli/routing_inputs.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <tuple>
#include <vector>

#include "fusedmoe/error.hpp"

namespace fusedmoe::cli {
namespace {

struct Drawn {
  Tensor ids, weights;
};

Drawn draw(std::int64_t tokens, std::int64_t experts, int top_k, RoutingPattern pattern) {
  Drawn drawn{Tensor::empty(DType::int32, {tokens, top_k}), Tensor::empty(DType::fp32, {tokens, top_k})};
  make_routing(tokens, experts, top_k, pattern, 7, drawn.ids, drawn.weights);
  return drawn;
}

// Every token: k distinct ids in [0, E), weights positive and summing to 1.
void expect_valid(const Drawn& drawn, std::int64_t experts) {
  const std::int64_t tokens = drawn.ids.size(0), top_k = drawn.ids.size(1);
  for (std::int64_t t = 0; t < tokens; ++t) {
    std::set<std::int32_t> seen;
    double sum = 0;
    for (std::int64_t j = 0; j < top_k; ++j) {
      const std::int32_t id = drawn.ids.data_as<std::int32_t>()[t * top_k + j];
      ASSERT_GE(id, 0);
      ASSERT_LT(id, experts);
      seen.insert(id);
      const float weight = drawn.weights.data_as<float>()[t * top_k + j];
      ASSERT_GT(weight, 0.0f);
      sum += weight;
    }
    EXPECT_EQ(static_cast<std::int64_t>(seen.size()), top_k) << "token " << t;
    EXPECT_NEAR(sum, 1.0, 1e-5) << "token " << t;
  }
}

std::vector<std::int64_t> counts(const Drawn& drawn, std::int64_t experts) {
  std::vector<std::int64_t> per_expert(static_cast<std::size_t>(experts), 0);
  for (std::int64_t i = 0; i < drawn.ids.numel(); ++i) ++per_expert[drawn.ids.data_as<std::int32_t>()[i]];
  return per_expert;
}

TEST(BenchRouting, BalancedGivesEveryExpertFloorOrCeilOfItsShare) {
  for (const auto& [tokens, experts, top_k] : {std::tuple<std::int64_t, std::int64_t, int>{4096, 128, 8},
                                               {4112, 128, 8},
                                               {37, 60, 4},
                                               {1, 8, 8},
                                               {5, 3, 3},
                                               {1000, 256, 8}}) {
    const Drawn drawn = draw(tokens, experts, top_k, RoutingPattern::balanced);
    expect_valid(drawn, experts);
    const std::int64_t pairs = tokens * top_k, low = pairs / experts, high = (pairs + experts - 1) / experts;
    for (const std::int64_t count : counts(drawn, experts)) {
      EXPECT_TRUE(count == low || count == high)
          << count << " pairs on one expert; expected " << low << " or " << high << " (M " << tokens << ", E "
          << experts << ")";
    }
  }
}

TEST(BenchRouting, UniformAndSkewedPickDistinctExperts) {
  expect_valid(draw(300, 64, 8, RoutingPattern::uniform), 64);
  const Drawn skewed = draw(300, 64, 8, RoutingPattern::skewed);
  expect_valid(skewed, 64);
  for (std::int64_t t = 0; t < 300; ++t) EXPECT_EQ(skewed.ids.data_as<std::int32_t>()[t * 8], 0);
  // Uniform spreads the pairs: no expert far above its share (2400 / 64 = 37.5).
  for (const std::int64_t count : counts(draw(300, 64, 8, RoutingPattern::uniform), 64)) EXPECT_LT(count, 80);
}

// bench and tune compare runs across sessions: the uniform draw of a seed must never change.
TEST(BenchRouting, UniformDrawIsPinned) {
  const Drawn drawn = draw(2, 128, 8, RoutingPattern::uniform);
  const std::vector<std::int32_t> ids(drawn.ids.data_as<std::int32_t>(),
                                      drawn.ids.data_as<std::int32_t>() + 16);
  EXPECT_EQ(ids,
            (std::vector<std::int32_t>{0, 14, 17, 41, 21, 107, 86, 121, 59, 29, 46, 102, 101, 96, 66, 87}));
  const float expected_weights[] = {0.123645f, 0.100083f, 0.191827f, 0.0786072f};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(drawn.weights.data_as<float>()[i], expected_weights[i], 2e-6f) << i;
}

TEST(BenchRouting, NamesAreCheckedAndTopKBounded) {
  EXPECT_EQ(routing_pattern_from_name("balanced"), RoutingPattern::balanced);
  EXPECT_EQ(routing_pattern_from_name("uniform"), RoutingPattern::uniform);
  EXPECT_EQ(routing_pattern_from_name("skewed"), RoutingPattern::skewed);
  EXPECT_THROW(routing_pattern_from_name("round_robin"), InvalidArgument);
  Tensor ids = Tensor::empty(DType::int32, {2, 5}), weights = Tensor::empty(DType::fp32, {2, 5});
  EXPECT_THROW(make_routing(2, 4, 5, RoutingPattern::balanced, 0, ids, weights), InvalidArgument);
}

}  // namespace
}  // namespace fusedmoe::cli
