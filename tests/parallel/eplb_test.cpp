// EPLB: the rebalancing policy on hand-derived inputs, its invariants and determinism, the logical/physical
// state (replica choice by position, load counters, rebalance) and the error messages.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "core/random.hpp"
#include "fusedmoe/error.hpp"
#include "parallel/eplb/eplb_policy.hpp"
#include "parallel/eplb/eplb_state.hpp"

namespace fusedmoe {
namespace {

using Ids = std::vector<std::int32_t>;

void expect_invalid(const std::function<void()>& call, const std::string& fragment) {
  try {
    call();
    ADD_FAILURE() << "no exception; expected one mentioning '" << fragment << "'";
  } catch (const InvalidArgument& error) {
    EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos) << error.what();
  }
}

// Zipf-like skewed load over a seeded ranking of the experts: expert at popularity rank r gets 1000 /
// (r+1)^skew.
std::vector<std::vector<double>> skewed_load(int layers, int experts, double skew, std::uint64_t seed) {
  std::vector<std::vector<double>> load(layers, std::vector<double>(experts));
  for (int layer_idx = 0; layer_idx < layers; ++layer_idx) {
    std::vector<int> ranking(experts);
    for (int expert_idx = 0; expert_idx < experts; ++expert_idx) ranking[expert_idx] = expert_idx;
    for (int index = experts - 1; index > 0; --index) {
      std::swap(ranking[index], ranking[mix64(seed * 1000 + layer_idx * 100 + index) % (index + 1)]);
    }
    for (int position = 0; position < experts; ++position) {
      load[layer_idx][ranking[position]] = std::round(1000.0 / std::pow(position + 1.0, skew));
    }
  }
  return load;
}

// Structural invariants every placement must satisfy.
void expect_valid_placement(const ReplicaPlacement& placement, int num_logical, int num_physical,
                            int num_ranks) {
  ASSERT_EQ(placement.physical_to_logical.size(), static_cast<std::size_t>(num_physical));
  ASSERT_EQ(placement.logical_replica_count.size(), static_cast<std::size_t>(num_logical));
  ASSERT_EQ(placement.logical_to_physical.size(), static_cast<std::size_t>(num_logical));
  int total = 0;
  std::vector<int> slot_seen(num_physical, 0);
  for (int logical_idx = 0; logical_idx < num_logical; ++logical_idx) {
    const int count = placement.logical_replica_count[logical_idx];
    EXPECT_GE(count, 1) << "logical expert " << logical_idx << " has no replica";
    total += count;
    const Ids& replicas = placement.logical_to_physical[logical_idx];
    ASSERT_EQ(replicas.size(), static_cast<std::size_t>(num_physical - num_logical + 1));
    for (std::size_t replica_idx = 0; replica_idx < replicas.size(); ++replica_idx) {
      if (replica_idx >= static_cast<std::size_t>(count)) {
        EXPECT_EQ(replicas[replica_idx], -1);
        continue;
      }
      ASSERT_GE(replicas[replica_idx], 0);
      ASSERT_LT(replicas[replica_idx], num_physical);
      EXPECT_EQ(placement.physical_to_logical[replicas[replica_idx]], logical_idx);
      ++slot_seen[replicas[replica_idx]];
    }
  }
  EXPECT_EQ(total, num_physical) << "replica counts must sum to P";
  // Every slot is listed exactly once, so each rank's P / R slots all hold a replica.
  for (int physical_idx = 0; physical_idx < num_physical; ++physical_idx) {
    EXPECT_EQ(slot_seen[physical_idx], 1)
        << "slot " << physical_idx << " (rank " << physical_idx / (num_physical / num_ranks) << ")";
  }
}

// Hand derivation. E = 8 experts in G = 4 groups of 2, N = 2 nodes, R = 4 ranks (2 per node), P = 12
// (6 per node, 3 per rank). load = [9 1 | 2 2 | 6 6 | 1 3]; group loads g0 = 10, g1 = 4, g2 = 12, g3 = 4.
// Step 1 (2 groups per node), descending, equal loads by index: g2, g0, g1, g3.
//   g2 -> node 0 (both empty: lowest index) {12}; g0 -> node 1 {10}; g1 -> node 1 (10 < 12) {14, full};
//   g3 -> node 0 {16}. Node 0 holds experts [4 5 6 7] (loads 6 6 1 3), node 1 holds [0 1 2 3] (9 1 2 2).
// Step 2, node 0, two extra replicas: load/count = 6 6 1 3 -> expert 4 (tie, lowest index); then 3 6 1 3 ->
//   expert 5. Node slots [4 5 6 7 4 5], replica numbers [0 0 0 0 1 1], weights 3 3 1 3 3 3.
// Step 3, node 0 onto ranks 0 and 1 (3 slots each), order: slots 0 1 3 4 5 (weight 3), then 2 (weight 1):
//   s0 -> r0 {3}; s1 -> r1 {3}; s3 -> r0 (tie) {6}; s4 -> r1 {6}; s5 -> r0 {9, full}; s2 -> r1 {7}.
//   rank 0 = slots s0 s3 s5 = experts 4 7 5 (replicas 0 0 1); rank 1 = s1 s4 s2 = experts 5 4 6 (0 1 0).
// Step 2, node 1: 9 1 2 2 -> expert 0; 4.5 1 2 2 -> expert 0 again. Slots [0 1 2 3 0 0], replica numbers
//   [0 0 0 0 1 2], weights 3 1 2 2 3 3.
// Step 3, node 1 onto ranks 2 and 3, order: s0 s4 s5 (3), s2 s3 (2), s1 (1):
//   s0 -> r2 {3}; s4 -> r3 {3}; s5 -> r2 (tie) {6}; s2 -> r3 {5}; s3 -> r3 (5 < 6) {7, full}; s1 -> r2 {7}.
//   rank 2 = s0 s5 s1 = experts 0 0 1 (replicas 0 2 0); rank 3 = s4 s2 s3 = experts 0 2 3 (1 0 0).
// So physical_to_logical = [4 7 5 | 5 4 6 | 0 0 1 | 0 2 3], counts [3 1 1 1 2 2 1 1], rank loads 9 7 7 7.
TEST(EplbPolicy, HierarchicalMatchesHandDerivation) {
  const RebalanceResult result = rebalance_experts({{9, 1, 2, 2, 6, 6, 1, 3}}, 12, 4, 2, 4);
  ASSERT_EQ(result.layers.size(), 1u);
  EXPECT_TRUE(result.hierarchical);
  const ReplicaPlacement& placement = result.layers[0];
  EXPECT_EQ(placement.physical_to_logical, (Ids{4, 7, 5, 5, 4, 6, 0, 0, 1, 0, 2, 3}));
  EXPECT_EQ(placement.logical_replica_count, (Ids{3, 1, 1, 1, 2, 2, 1, 1}));
  const std::vector<Ids> expected_logical_to_physical{
      {6, 9, 7, -1, -1},  {8, -1, -1, -1, -1}, {10, -1, -1, -1, -1}, {11, -1, -1, -1, -1},
      {0, 4, -1, -1, -1}, {3, 2, -1, -1, -1},  {5, -1, -1, -1, -1},  {1, -1, -1, -1, -1}};
  EXPECT_EQ(placement.logical_to_physical, expected_logical_to_physical);
  expect_valid_placement(placement, 8, 12, 4);

  const RankLoad after = compute_rank_load({9, 1, 2, 2, 6, 6, 1, 3}, placement, 4);
  EXPECT_EQ(after.per_rank, (std::vector<double>{9, 7, 7, 7}));
  EXPECT_DOUBLE_EQ(after.max, 9.0);
  EXPECT_DOUBLE_EQ(after.mean, 7.5);
  EXPECT_DOUBLE_EQ(after.balance_ratio, 1.2);
  // Initial placement: slots [0 1 2 | 3 4 5 | 6 7 0 | 1 2 3], experts 0-3 twice, so
  // ranks 4.5+0.5+1 = 6, 1+6+6 = 13, 1+3+4.5 = 8.5, 0.5+1+1 = 2.5: max/mean 13 / 7.5.
  const RankLoad before = compute_rank_load({9, 1, 2, 2, 6, 6, 1, 3}, initial_placement(8, 12), 4);
  EXPECT_EQ(before.per_rank, (std::vector<double>{6, 13, 8.5, 2.5}));
  EXPECT_DOUBLE_EQ(before.balance_ratio, 13.0 / 7.5);
}

// Hand derivation, global policy: num_groups = 1 is not a multiple of num_nodes = 2, so everything is
// replicated and packed over all R = 2 ranks (P = 6, 3 per rank). load = [8 4 2 2].
// Replication: 8 4 2 2 -> expert 0; 4 4 2 2 -> expert 0 (tie, lowest index). Slots [0 1 2 3 0 0],
//   replica numbers [0 0 0 0 1 2], weights 8/3 4 2 2 8/3 8/3.
// Packing, order: s1 (4), s0 s4 s5 (8/3), s2 s3 (2):
//   s1 -> r0 {4}; s0 -> r1 {8/3}; s4 -> r1 {16/3}; s5 -> r0 (4 < 16/3) {20/3}; s2 -> r1 {22/3, full};
//   s3 -> r0 {26/3}. rank 0 = s1 s5 s3 = experts 1 0 3 (replicas 0 2 0); rank 1 = s0 s4 s2 = 0 0 2 (0 1 0).
TEST(EplbPolicy, GlobalMatchesHandDerivation) {
  const RebalanceResult result = rebalance_experts({{8, 4, 2, 2}}, 6, 1, 2, 2);
  EXPECT_FALSE(result.hierarchical);
  const ReplicaPlacement& placement = result.layers[0];
  EXPECT_EQ(placement.physical_to_logical, (Ids{1, 0, 3, 0, 0, 2}));
  EXPECT_EQ(placement.logical_replica_count, (Ids{3, 1, 1, 1}));
  EXPECT_EQ(placement.logical_to_physical,
            (std::vector<Ids>{{3, 4, 1}, {0, -1, -1}, {5, -1, -1}, {2, -1, -1}}));
  const RankLoad load = compute_rank_load({8, 4, 2, 2}, placement, 2);
  EXPECT_NEAR(load.per_rank[0], 26.0 / 3, 1e-12);
  EXPECT_NEAR(load.per_rank[1], 22.0 / 3, 1e-12);
  // The global policy is the hierarchical one with one group on one node.
  EXPECT_EQ(rebalance_experts({{8, 4, 2, 2}}, 6, 1, 1, 2).layers, result.layers);
}

// Equal loads keep index order and ties go to the lowest pack: [1 1 1 1], P = 4 over 2 ranks: slot order
// 0 1 2 3 -> r0, r1, r0 (tie), r1, so rank 0 = experts 0 2 and rank 1 = experts 1 3.
TEST(EplbPolicy, TiesKeepIndexOrder) {
  const RebalanceResult result = rebalance_experts({{1, 1, 1, 1}}, 4, 1, 1, 2);
  EXPECT_EQ(result.layers[0].physical_to_logical, (Ids{0, 2, 1, 3}));
  // One slot per rank: slot i stays on rank i (no packing choice to make).
  EXPECT_EQ(rebalance_experts({{1, 5, 3}}, 3, 1, 1, 3).layers[0].physical_to_logical, (Ids{0, 1, 2}));
  // All-zero load is valid: counts still sum to P and every expert keeps a replica.
  const RebalanceResult zero = rebalance_experts({{0, 0, 0, 0}}, 8, 2, 2, 2);
  expect_valid_placement(zero.layers[0], 4, 8, 2);
  EXPECT_DOUBLE_EQ(compute_rank_load({0, 0, 0, 0}, zero.layers[0], 2).balance_ratio, 1.0);
}

TEST(EplbPolicy, GlobalWhenGroupsDoNotSpreadOverNodes) {
  const auto load = skewed_load(3, 12, 1.3, 7);
  const RebalanceResult uneven = rebalance_experts(load, 16, 3, 2, 4);  // 3 groups over 2 nodes
  EXPECT_FALSE(uneven.hierarchical);
  EXPECT_EQ(uneven.layers, rebalance_experts(load, 16, 1, 1, 4).layers);
  // With groups that spread evenly the answer is hierarchical and, here, different.
  const RebalanceResult even = rebalance_experts(load, 16, 6, 2, 4);
  EXPECT_TRUE(even.hierarchical);
  EXPECT_NE(even.layers, uneven.layers);
}

TEST(EplbPolicy, HierarchicalKeepsEachGroupOnOneNode) {
  const int experts = 32, groups = 8, nodes = 2, ranks = 8, physical = 48;
  const auto load = skewed_load(4, experts, 1.2, 3);
  const RebalanceResult result = rebalance_experts(load, physical, groups, nodes, ranks);
  ASSERT_TRUE(result.hierarchical);
  const int physical_per_node = physical / nodes, group_size = experts / groups;
  for (const ReplicaPlacement& placement : result.layers) {
    std::vector<int> node_of_group(groups, -1);
    std::vector<int> groups_on_node(nodes, 0);
    for (int physical_idx = 0; physical_idx < physical; ++physical_idx) {
      const int group = placement.physical_to_logical[physical_idx] / group_size;
      const int node = physical_idx / physical_per_node;
      if (node_of_group[group] == -1) {
        node_of_group[group] = node;
        ++groups_on_node[node];
      }
      EXPECT_EQ(node_of_group[group], node) << "group " << group << " split over nodes";
    }
    EXPECT_EQ(groups_on_node, (std::vector<int>{4, 4}));
  }
}

TEST(EplbPolicy, InvariantsHoldAndResultIsDeterministic) {
  struct Shape {
    int experts, physical, groups, nodes, ranks;
  };
  for (const Shape shape :
       {Shape{8, 8, 1, 1, 2}, Shape{16, 20, 4, 2, 4}, Shape{64, 80, 8, 2, 8}, Shape{64, 72, 8, 4, 8},
        Shape{12, 18, 3, 2, 6}, Shape{256, 288, 8, 4, 32}, Shape{6, 30, 2, 1, 5}}) {
    SCOPED_TRACE(::testing::Message() << "E " << shape.experts << " P " << shape.physical << " G "
                                      << shape.groups << " N " << shape.nodes << " R " << shape.ranks);
    const auto load = skewed_load(3, shape.experts, 1.0, static_cast<std::uint64_t>(shape.physical));
    const RebalanceResult first =
        rebalance_experts(load, shape.physical, shape.groups, shape.nodes, shape.ranks);
    const RebalanceResult second =
        rebalance_experts(load, shape.physical, shape.groups, shape.nodes, shape.ranks);
    EXPECT_EQ(first, second);
    ASSERT_EQ(first.layers.size(), 3u);
    for (const ReplicaPlacement& placement : first.layers) {
      expect_valid_placement(placement, shape.experts, shape.physical, shape.ranks);
    }
  }
}

TEST(EplbPolicy, BalanceImprovesOnSkewedLoad) {
  // max_after: a loose bound on the rebalanced max/mean (without redundant experts the hottest expert alone
  // can exceed the mean rank load, and the hierarchical policy cannot move replicas across nodes).
  struct Shape {
    int experts, physical, groups, nodes, ranks;
    double skew, max_after;
  };
  for (const Shape shape : {Shape{64, 80, 8, 2, 8, 1.0, 1.15}, Shape{64, 80, 8, 2, 8, 1.5, 1.25},
                            Shape{256, 288, 8, 4, 32, 0.8, 1.4}, Shape{32, 40, 1, 1, 4, 1.2, 1.1},
                            Shape{16, 16, 4, 2, 4, 1.0, 1.6}}) {
    SCOPED_TRACE(::testing::Message()
                 << "E " << shape.experts << " P " << shape.physical << " skew " << shape.skew);
    const auto load = skewed_load(4, shape.experts, shape.skew, 11);
    const RebalanceResult result =
        rebalance_experts(load, shape.physical, shape.groups, shape.nodes, shape.ranks);
    const ReplicaPlacement initial = initial_placement(shape.experts, shape.physical);
    for (std::size_t layer_idx = 0; layer_idx < load.size(); ++layer_idx) {
      const double before = compute_rank_load(load[layer_idx], initial, shape.ranks).balance_ratio;
      const double after =
          compute_rank_load(load[layer_idx], result.layers[layer_idx], shape.ranks).balance_ratio;
      EXPECT_LE(after, before) << "layer " << layer_idx;
      EXPECT_LT(after, shape.max_after) << "layer " << layer_idx << " (before " << before << ")";
    }
  }
}

TEST(EplbPolicy, RejectsBadInputsNamingTheField) {
  const std::vector<std::vector<double>> load{{1, 2, 3, 4, 5, 6, 7, 8}};
  expect_invalid([&] { rebalance_experts({}, 8, 1, 1, 1); }, "load has no layers");
  expect_invalid([&] { rebalance_experts({{}}, 8, 1, 1, 1); }, "load[0] is empty");
  expect_invalid(
      [&] {
        rebalance_experts({{1, 2}, {1, 2, 3}}, 4, 1, 1, 1);
      },
      "load[1] has 3 logical experts");
  expect_invalid([&] { rebalance_experts({{1, -2}}, 4, 1, 1, 1); }, "load[0][1] = -2");
  expect_invalid([&] { rebalance_experts({{1, NAN}}, 4, 1, 1, 1); }, "load[0][1]");
  expect_invalid([&] { rebalance_experts({{1, INFINITY}}, 4, 1, 1, 1); }, "load[0][1]");
  expect_invalid([&] { rebalance_experts(load, 0, 1, 1, 1); }, "num_physical_experts = 0");
  expect_invalid([&] { rebalance_experts(load, 8, 0, 1, 1); }, "num_groups = 0");
  expect_invalid([&] { rebalance_experts(load, 8, 1, 0, 1); }, "num_nodes = 0");
  expect_invalid([&] { rebalance_experts(load, 8, 1, 1, 0); }, "num_ranks = 0");
  expect_invalid([&] { rebalance_experts(load, 10, 1, 1, 4); },
                 "num_physical_experts = 10: expected a multiple of num_ranks = 4");
  expect_invalid([&] { rebalance_experts(load, 12, 2, 2, 3); },
                 "num_ranks = 3: expected a multiple of num_nodes = 2");
  expect_invalid([&] { rebalance_experts(load, 12, 3, 1, 1); },
                 "num_logical_experts = 8: expected a multiple of num_groups = 3");
  expect_invalid([&] { rebalance_experts(load, 6, 1, 1, 2); },
                 "num_physical_experts = 6: expected >= num_logical_experts = 8");
  expect_invalid(
      [&] {
        compute_rank_load({1, 2, 3}, initial_placement(4, 4), 2);
      },
      "layer load has 3 logical experts");
  expect_invalid([&] { compute_rank_load({1, 2, 3, 4}, initial_placement(4, 6), 4); }, "num_ranks = 4");
  expect_invalid(
      [&] {
        placement_from_physical_to_logical({0, 1, 1}, 3);
      },
      "logical expert 2 has no replica");
  expect_invalid([&] { placement_from_physical_to_logical({0, 3, 1}, 3); }, "physical_to_logical[1] = 3");
}

TEST(EplbState, InitialPlacementRepeatsTheFirstExperts) {
  EplbState state({.num_layers = 2, .num_logical_experts = 4, .num_physical_experts = 6, .num_ranks = 2});
  const ReplicaPlacement& placement = state.placement(1);
  EXPECT_EQ(placement.physical_to_logical, (Ids{0, 1, 2, 3, 0, 1}));
  EXPECT_EQ(placement.logical_replica_count, (Ids{2, 2, 1, 1}));
  EXPECT_EQ(placement.logical_to_physical,
            (std::vector<Ids>{{0, 4, -1}, {1, 5, -1}, {2, -1, -1}, {3, -1, -1}}));
  EXPECT_EQ(placement, initial_placement(4, 6));
}

TEST(EplbState, ReplicaChosenByPositionModuloCount) {
  EplbState state({.num_layers = 1, .num_logical_experts = 4, .num_physical_experts = 6, .num_ranks = 2});
  // Expert 0 lives in slots 0 and 4, expert 2 only in slot 2.
  for (std::int64_t position = 0; position < 8; ++position) {
    EXPECT_EQ(state.physical_id(0, 0, position), position % 2 == 0 ? 0 : 4);
    EXPECT_EQ(state.physical_id(0, 2, position), 2);
  }
  // After a rebalance on the hierarchical example, expert 0 has replicas [6 9 7] and expert 4 [0 4].
  EplbState big({.num_layers = 1,
                 .num_logical_experts = 8,
                 .num_physical_experts = 12,
                 .num_groups = 4,
                 .num_nodes = 2,
                 .num_ranks = 4});
  big.apply(rebalance_experts({{9, 1, 2, 2, 6, 6, 1, 3}}, 12, 4, 2, 4));
  const Ids expected_expert0{6, 9, 7, 6, 9, 7, 6};
  for (int position = 0; position < 7; ++position)
    EXPECT_EQ(big.physical_id(0, 0, position), expected_expert0[position]);
  EXPECT_EQ(big.physical_id(0, 4, 1'000'001), 4);
  // map_to_physical uses the flattened index (token * top_k + slot) as the position.
  const Ids logical{0, 0, 4, 0, 4, 5};
  Ids physical(logical.size());
  big.map_to_physical(0, logical, physical);
  EXPECT_EQ(physical, (Ids{6, 9, 0, 6, 0, 2}));
}

TEST(EplbState, RecordsLoadAndRebalances) {
  const EplbConfig config{.num_layers = 2,
                          .num_logical_experts = 8,
                          .num_physical_experts = 12,
                          .num_groups = 4,
                          .num_nodes = 2,
                          .num_ranks = 4};
  EplbState state(config);
  // Layer 0 gets the hand-derived example's load [9 1 2 2 6 6 1 3], routed through the initial placement
  // (slots 8-11 repeat experts 0-3); layer 1 sends everything to expert 5.
  const std::vector<double> wanted{9, 1, 2, 2, 6, 6, 1, 3};
  Ids trace;
  for (int expert_idx = 0; expert_idx < 8; ++expert_idx)
    trace.insert(trace.end(), static_cast<std::size_t>(wanted[expert_idx]), expert_idx);
  Ids physical(trace.size());
  state.map_to_physical(0, trace, physical);
  state.record(0, physical);
  state.record(1, Ids(5, 5));
  // Expert 0 tokens alternate between slots 0 and 8 by position: 9 tokens at positions 0..8 -> 5 and 4.
  EXPECT_EQ(state.physical_load(0)[0], 5);
  EXPECT_EQ(state.physical_load(0)[8], 4);
  EXPECT_EQ(state.physical_load(1)[5], 5);
  const auto logical = state.logical_load();
  EXPECT_EQ(logical[0], wanted);
  EXPECT_EQ(logical[1], (std::vector<double>{0, 0, 0, 0, 0, 5, 0, 0}));

  const RebalanceResult expected = rebalance_experts(logical, 12, 4, 2, 4);
  const RebalanceResult result = state.rebalance();
  EXPECT_EQ(result, expected);
  EXPECT_EQ(state.placement(0).physical_to_logical, (Ids{4, 7, 5, 5, 4, 6, 0, 0, 1, 0, 2, 3}));
  EXPECT_EQ(state.placement(1), expected.layers[1]);
  for (int layer_idx = 0; layer_idx < 2; ++layer_idx) {
    for (const std::int64_t count : state.physical_load(layer_idx)) EXPECT_EQ(count, 0);
  }
}

TEST(EplbState, RejectsBadInputsNamingTheField) {
  const EplbConfig good{.num_layers = 1, .num_logical_experts = 4, .num_physical_experts = 6, .num_ranks = 2};
  expect_invalid([&] { EplbState({.num_layers = 0, .num_logical_experts = 4, .num_physical_experts = 4}); },
                 "num_layers = 0");
  expect_invalid([&] { EplbState({.num_layers = 1, .num_logical_experts = 4, .num_physical_experts = 3}); },
                 "num_physical_experts = 3");
  expect_invalid(
      [&] {
        EplbState({.num_layers = 1, .num_logical_experts = 4, .num_physical_experts = 6, .num_ranks = 4});
      },
      "num_ranks = 4");
  EplbState state(good);
  expect_invalid([&] { state.placement(1); }, "layer = 1");
  expect_invalid([&] { state.physical_id(0, 4, 0); }, "logical expert 4");
  expect_invalid([&] { state.physical_id(0, 0, -1); }, "position = -1");
  expect_invalid([&] { state.record(0, Ids{6}); }, "physical expert 6");
  expect_invalid([&] { state.record(-1, Ids{0}); }, "layer = -1");
  Ids too_short(1);
  expect_invalid([&] { state.map_to_physical(0, Ids{0, 1}, too_short); }, "physical_ids has 1 entries");
  RebalanceResult wrong_layers;
  expect_invalid([&] { state.apply(wrong_layers); }, "placement has 0 layers");
  RebalanceResult inconsistent{.layers = {initial_placement(4, 6)}};
  inconsistent.layers[0].logical_to_physical[0][1] = 1;  // slot 1 holds expert 1, not 0
  expect_invalid([&] { state.apply(inconsistent); }, "logical_to_physical[0][1] = 1");
  RebalanceResult wrong_width{.layers = {initial_placement(4, 8)}};
  expect_invalid([&] { state.apply(wrong_width); }, "physical_to_logical has 8 entries");
}

}  // namespace
}  // namespace fusedmoe
