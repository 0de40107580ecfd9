// DeepSeek's EPLB rebalancing policy (balanced packing, replication of the hottest experts), written from its
// description: exact, deterministic, on the CPU, in fp64.
#include "parallel/eplb/eplb_policy.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/check.hpp"

namespace fusedmoe {

namespace {

// Where balanced_packing put each item: its pack and its slot (order of arrival) inside the pack.
struct Packing {
  std::vector<int> pack;
  std::vector<int> slot;
};

// Packs items into `num_packs` packs of exactly items / num_packs items each, balancing the summed weight:
// items in descending weight (equal weights in ascending index order) each go to the lightest pack that still
// has room (ties: lowest pack index).
Packing balanced_packing(const std::vector<double>& weights, int num_packs) {
  const int num_items = static_cast<int>(weights.size());
  const int items_per_pack = num_items / num_packs;
  Packing packing{.pack = std::vector<int>(num_items), .slot = std::vector<int>(num_items, 0)};
  if (items_per_pack == 1) {
    // NOTE: one item per pack keeps item i in pack i, as DeepSeek's EPLB does; any assignment is equally
    // balanced, and this one leaves already-placed experts where they are.
    std::iota(packing.pack.begin(), packing.pack.end(), 0);
    return packing;
  }
  std::vector<int> order(num_items);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return weights[a] > weights[b]; });
  std::vector<double> pack_weight(num_packs, 0.0);
  std::vector<int> pack_items(num_packs, 0);
  for (const int item : order) {
    int best = -1;
    for (int pack_idx = 0; pack_idx < num_packs; ++pack_idx) {
      if (pack_items[pack_idx] == items_per_pack) continue;
      if (best < 0 || pack_weight[pack_idx] < pack_weight[best]) best = pack_idx;
    }
    FUSEDMOE_ASSERT(best >= 0, "every pack is full");
    packing.pack[item] = best;
    packing.slot[item] = pack_items[best];
    pack_weight[best] += weights[item];
    ++pack_items[best];
  }
  return packing;
}

// Replicas of `num_experts` experts in `num_physical` slots: slot e < num_experts holds expert e, and each
// further slot copies the expert with the highest load / replica count at that moment (ties: lowest index).
struct Replication {
  std::vector<int> physical_to_expert;  // [num_physical]
  std::vector<int> replica_rank;        // [num_physical]: 0 for the first copy of an expert, then 1, 2, ...
  std::vector<int> replica_count;       // [num_experts]
};

Replication replicate_experts(const std::vector<double>& load, int num_physical) {
  const int num_experts = static_cast<int>(load.size());
  Replication replication{.physical_to_expert = std::vector<int>(num_physical),
                          .replica_rank = std::vector<int>(num_physical, 0),
                          .replica_count = std::vector<int>(num_experts, 1)};
  std::iota(replication.physical_to_expert.begin(), replication.physical_to_expert.begin() + num_experts, 0);
  for (int physical_idx = num_experts; physical_idx < num_physical; ++physical_idx) {
    int hottest = 0;
    for (int expert_idx = 1; expert_idx < num_experts; ++expert_idx) {
      if (load[expert_idx] / replication.replica_count[expert_idx] >
          load[hottest] / replication.replica_count[hottest]) {
        hottest = expert_idx;
      }
    }
    replication.physical_to_expert[physical_idx] = hottest;
    replication.replica_rank[physical_idx] = replication.replica_count[hottest]++;
  }
  return replication;
}

// The three steps for one layer. In the global policy num_groups = num_nodes = 1.
ReplicaPlacement rebalance_layer(const std::vector<double>& load, int num_physical_experts, int num_groups,
                                 int num_nodes, int num_ranks) {
  const int num_experts = static_cast<int>(load.size());
  const int group_size = num_experts / num_groups;
  const int groups_per_node = num_groups / num_nodes;
  const int experts_per_node = num_experts / num_nodes;
  const int physical_per_node = num_physical_experts / num_nodes;
  const int ranks_per_node = num_ranks / num_nodes;
  const int physical_per_rank = num_physical_experts / num_ranks;

  // Step 1: groups onto nodes. node_major[node * experts_per_node + j] is the j-th logical expert of a node
  // (its groups in slot order, each group's experts in order).
  std::vector<double> group_load(num_groups, 0.0);
  for (int expert_idx = 0; expert_idx < num_experts; ++expert_idx) {
    group_load[expert_idx / group_size] += load[expert_idx];
  }
  const Packing group_packing = balanced_packing(group_load, num_nodes);
  std::vector<int> node_major(num_experts);
  for (int group_idx = 0; group_idx < num_groups; ++group_idx) {
    const int first =
        (group_packing.pack[group_idx] * groups_per_node + group_packing.slot[group_idx]) * group_size;
    for (int member = 0; member < group_size; ++member)
      node_major[first + member] = group_idx * group_size + member;
  }

  std::vector<std::int32_t> physical_to_logical(num_physical_experts);
  std::vector<int> replica_rank(num_physical_experts);
  std::vector<std::int32_t> replica_count(num_experts);
  for (int node_idx = 0; node_idx < num_nodes; ++node_idx) {
    // Step 2: replicate the node's experts into its physical slots.
    std::vector<double> node_load(experts_per_node);
    for (int local_idx = 0; local_idx < experts_per_node; ++local_idx) {
      node_load[local_idx] = load[node_major[node_idx * experts_per_node + local_idx]];
    }
    const Replication replication = replicate_experts(node_load, physical_per_node);

    // Step 3: the node's replicas, each carrying load / replica count, onto the node's ranks.
    std::vector<double> replica_load(physical_per_node);
    for (int replica_idx = 0; replica_idx < physical_per_node; ++replica_idx) {
      const int local_idx = replication.physical_to_expert[replica_idx];
      replica_load[replica_idx] = node_load[local_idx] / replication.replica_count[local_idx];
    }
    const Packing rank_packing = balanced_packing(replica_load, ranks_per_node);

    // Back to global slots and logical ids.
    for (int replica_idx = 0; replica_idx < physical_per_node; ++replica_idx) {
      const int physical_idx = node_idx * physical_per_node +
                               rank_packing.pack[replica_idx] * physical_per_rank +
                               rank_packing.slot[replica_idx];
      const int local_idx = replication.physical_to_expert[replica_idx];
      const int logical_idx = node_major[node_idx * experts_per_node + local_idx];
      physical_to_logical[physical_idx] = logical_idx;
      replica_rank[physical_idx] = replication.replica_rank[replica_idx];
      replica_count[logical_idx] = replication.replica_count[local_idx];
    }
  }

  const int max_replicas = num_physical_experts - num_experts + 1;
  ReplicaPlacement placement{.physical_to_logical = std::move(physical_to_logical),
                             .logical_to_physical = std::vector<std::vector<std::int32_t>>(
                                 num_experts, std::vector<std::int32_t>(max_replicas, -1)),
                             .logical_replica_count = std::move(replica_count)};
  for (int physical_idx = 0; physical_idx < num_physical_experts; ++physical_idx) {
    std::int32_t& entry =
        placement
            .logical_to_physical[placement.physical_to_logical[physical_idx]][replica_rank[physical_idx]];
    FUSEDMOE_ASSERT(entry == -1, "replica ", replica_rank[physical_idx], " of expert ",
                    placement.physical_to_logical[physical_idx], " placed twice");
    entry = physical_idx;
  }
  return placement;
}

}  // namespace

void check_eplb_sizes(int num_logical_experts, int num_physical_experts, int num_groups, int num_nodes,
                      int num_ranks) {
  FUSEDMOE_CHECK(num_logical_experts >= 1, "[eplb] num_logical_experts = ", num_logical_experts,
                 ": expected >= 1");
  FUSEDMOE_CHECK(num_physical_experts >= 1, "[eplb] num_physical_experts = ", num_physical_experts,
                 ": expected >= 1");
  FUSEDMOE_CHECK(num_groups >= 1, "[eplb] num_groups = ", num_groups, ": expected >= 1");
  FUSEDMOE_CHECK(num_nodes >= 1, "[eplb] num_nodes = ", num_nodes, ": expected >= 1");
  FUSEDMOE_CHECK(num_ranks >= 1, "[eplb] num_ranks = ", num_ranks, ": expected >= 1");
  FUSEDMOE_CHECK(
      num_physical_experts % num_ranks == 0, "[eplb] num_physical_experts = ", num_physical_experts,
      ": expected a multiple of num_ranks = ", num_ranks, " (every rank holds the same number of experts)");
  FUSEDMOE_CHECK(num_ranks % num_nodes == 0, "[eplb] num_ranks = ", num_ranks,
                 ": expected a multiple of num_nodes = ", num_nodes,
                 " (every node has the same number of ranks)");
  FUSEDMOE_CHECK(num_logical_experts % num_groups == 0, "[eplb] num_logical_experts = ", num_logical_experts,
                 ": expected a multiple of num_groups = ", num_groups);
  FUSEDMOE_CHECK(
      num_physical_experts >= num_logical_experts, "[eplb] num_physical_experts = ", num_physical_experts,
      ": expected >= num_logical_experts = ", num_logical_experts, " (every logical expert needs a replica)");
}

RebalanceResult rebalance_experts(const std::vector<std::vector<double>>& load, int num_physical_experts,
                                  int num_groups, int num_nodes, int num_ranks) {
  FUSEDMOE_CHECK(!load.empty(),
                 "[eplb] load has no layers: expected [layers][logical experts] with at least one layer");
  const std::size_t width = load.front().size();
  FUSEDMOE_CHECK(width > 0, "[eplb] load[0] is empty: expected one load per logical expert");
  for (std::size_t layer_idx = 0; layer_idx < load.size(); ++layer_idx) {
    FUSEDMOE_CHECK(load[layer_idx].size() == width, "[eplb] load[", layer_idx, "] has ",
                   load[layer_idx].size(), " logical experts: expected ", width,
                   " (the width of load[0]); every layer needs the same width");
    for (std::size_t expert_idx = 0; expert_idx < width; ++expert_idx) {
      const double value = load[layer_idx][expert_idx];
      FUSEDMOE_CHECK(std::isfinite(value) && value >= 0.0, "[eplb] load[", layer_idx, "][", expert_idx,
                     "] = ", value, ": expected a finite value >= 0");
    }
  }
  FUSEDMOE_CHECK(width <= static_cast<std::size_t>(INT32_MAX), "[eplb] load has ", width,
                 " logical experts: expected at most ", INT32_MAX);
  const int num_experts = static_cast<int>(width);
  check_eplb_sizes(num_experts, num_physical_experts, num_groups, num_nodes, num_ranks);

  RebalanceResult result;
  result.hierarchical = num_groups % num_nodes == 0;
  if (result.hierarchical) {
    // NOTE: (P / nodes) >= (E / nodes) follows from the checks above: ranks % nodes == 0 makes P a multiple
    // of nodes, groups % nodes == 0 makes E one, and P >= E.
    FUSEDMOE_ASSERT(num_physical_experts / num_nodes >= num_experts / num_nodes);
  } else {
    // NOTE: groups that cannot be spread evenly over the nodes fall back to the global policy, as DeepSeek's
    // EPLB does: replicate and pack over all ranks at once.
    num_groups = 1;
    num_nodes = 1;
  }
  result.layers.reserve(load.size());
  for (const std::vector<double>& layer_load : load) {
    result.layers.push_back(
        rebalance_layer(layer_load, num_physical_experts, num_groups, num_nodes, num_ranks));
  }
  return result;
}

ReplicaPlacement initial_placement(int num_logical_experts, int num_physical_experts) {
  FUSEDMOE_CHECK(num_logical_experts >= 1, "[eplb] num_logical_experts = ", num_logical_experts,
                 ": expected >= 1");
  FUSEDMOE_CHECK(
      num_physical_experts >= num_logical_experts, "[eplb] num_physical_experts = ", num_physical_experts,
      ": expected >= num_logical_experts = ", num_logical_experts, " (every logical expert needs a replica)");
  std::vector<std::int32_t> physical_to_logical(num_physical_experts);
  for (int physical_idx = 0; physical_idx < num_physical_experts; ++physical_idx) {
    physical_to_logical[physical_idx] = physical_idx % num_logical_experts;
  }
  return placement_from_physical_to_logical(physical_to_logical, num_logical_experts);
}

ReplicaPlacement placement_from_physical_to_logical(const std::vector<std::int32_t>& physical_to_logical,
                                                    int num_logical_experts) {
  const int num_physical_experts = static_cast<int>(physical_to_logical.size());
  FUSEDMOE_CHECK(num_logical_experts >= 1, "[eplb] num_logical_experts = ", num_logical_experts,
                 ": expected >= 1");
  FUSEDMOE_CHECK(num_physical_experts >= num_logical_experts, "[eplb] physical_to_logical has ",
                 num_physical_experts, " entries: expected >= num_logical_experts = ", num_logical_experts);
  const int max_replicas = num_physical_experts - num_logical_experts + 1;
  ReplicaPlacement placement{.physical_to_logical = physical_to_logical,
                             .logical_to_physical = std::vector<std::vector<std::int32_t>>(
                                 num_logical_experts, std::vector<std::int32_t>(max_replicas, -1)),
                             .logical_replica_count = std::vector<std::int32_t>(num_logical_experts, 0)};
  for (int physical_idx = 0; physical_idx < num_physical_experts; ++physical_idx) {
    const std::int32_t logical_idx = physical_to_logical[physical_idx];
    FUSEDMOE_CHECK(logical_idx >= 0 && logical_idx < num_logical_experts, "[eplb] physical_to_logical[",
                   physical_idx, "] = ", logical_idx, ": expected a logical expert in [0, ",
                   num_logical_experts, ")");
    std::int32_t& count = placement.logical_replica_count[logical_idx];
    // At most P - E + 1 replicas fit when every other expert has one, which the check below enforces.
    if (count < max_replicas) placement.logical_to_physical[logical_idx][count] = physical_idx;
    ++count;
  }
  for (int logical_idx = 0; logical_idx < num_logical_experts; ++logical_idx) {
    FUSEDMOE_CHECK(placement.logical_replica_count[logical_idx] >= 1,
                   "[eplb] physical_to_logical: logical expert ", logical_idx,
                   " has no replica: expected every logical expert in at least one slot");
  }
  return placement;
}

namespace {
RankLoad summarize(std::vector<double> per_rank) {
  RankLoad result{.per_rank = std::move(per_rank)};
  result.max = *std::max_element(result.per_rank.begin(), result.per_rank.end());
  result.mean = std::accumulate(result.per_rank.begin(), result.per_rank.end(), 0.0) /
                static_cast<double>(result.per_rank.size());
  result.balance_ratio = result.mean > 0.0 ? result.max / result.mean : 1.0;
  return result;
}

void check_ranks(std::size_t num_physical_experts, int num_ranks) {
  FUSEDMOE_CHECK(num_ranks >= 1, "[eplb] num_ranks = ", num_ranks, ": expected >= 1");
  FUSEDMOE_CHECK(num_physical_experts % static_cast<std::size_t>(num_ranks) == 0,
                 "[eplb] num_physical_experts = ", num_physical_experts,
                 ": expected a multiple of num_ranks = ", num_ranks);
}
}  // namespace

RankLoad compute_rank_load(const std::vector<double>& layer_load, const ReplicaPlacement& placement,
                           int num_ranks) {
  check_ranks(placement.physical_to_logical.size(), num_ranks);
  FUSEDMOE_CHECK(layer_load.size() == placement.logical_replica_count.size(), "[eplb] layer load has ",
                 layer_load.size(), " logical experts: expected ", placement.logical_replica_count.size(),
                 " (the placement's logical experts)");
  const std::size_t physical_per_rank = placement.physical_to_logical.size() / num_ranks;
  std::vector<double> per_rank(num_ranks, 0.0);
  for (std::size_t physical_idx = 0; physical_idx < placement.physical_to_logical.size(); ++physical_idx) {
    const std::int32_t logical_idx = placement.physical_to_logical[physical_idx];
    per_rank[physical_idx / physical_per_rank] +=
        layer_load[logical_idx] / placement.logical_replica_count[logical_idx];
  }
  return summarize(std::move(per_rank));
}

RankLoad compute_rank_load_from_physical(const std::vector<double>& physical_load, int num_ranks) {
  check_ranks(physical_load.size(), num_ranks);
  FUSEDMOE_CHECK(!physical_load.empty(),
                 "[eplb] physical load is empty: expected one value per physical expert");
  const std::size_t physical_per_rank = physical_load.size() / num_ranks;
  std::vector<double> per_rank(num_ranks, 0.0);
  for (std::size_t physical_idx = 0; physical_idx < physical_load.size(); ++physical_idx) {
    per_rank[physical_idx / physical_per_rank] += physical_load[physical_idx];
  }
  return summarize(std::move(per_rank));
}

}  // namespace fusedmoe
