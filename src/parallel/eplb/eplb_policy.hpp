// Expert-parallel load balancing (EPLB) policy: DeepSeek's hierarchical rebalancing, which decides how many
// replicas each logical expert gets and on which rank each replica lives, from the measured expert load.
#pragma once

#include <cstdint>
#include <vector>

namespace fusedmoe {

// Where the physical experts (weight replicas) of one MoE layer live. Physical expert p sits on rank
// p / (num_physical_experts / num_ranks).
struct ReplicaPlacement {
  std::vector<std::int32_t> physical_to_logical;  // [P]: the logical expert each slot holds
  std::vector<std::vector<std::int32_t>>
      logical_to_physical;                          // [E][P - E + 1]: slot of each replica, -1 padded
  std::vector<std::int32_t> logical_replica_count;  // [E]: replicas of each logical expert (>= 1)

  std::int64_t num_physical_experts() const { return static_cast<std::int64_t>(physical_to_logical.size()); }
  std::int64_t num_logical_experts() const { return static_cast<std::int64_t>(logical_replica_count.size()); }
  bool operator==(const ReplicaPlacement&) const = default;
};

// The policy's answer for every layer.
struct RebalanceResult {
  std::vector<ReplicaPlacement> layers;
  // True when expert groups were first packed onto nodes (num_groups % num_nodes == 0); false for the
  // global policy (as if num_groups = num_nodes = 1).
  bool hierarchical = false;
  bool operator==(const RebalanceResult&) const = default;
};

// Checks the sizes the policy and EplbState need; throws InvalidArgument naming the argument:
// every count >= 1, num_physical_experts a multiple of num_ranks, num_ranks a multiple of num_nodes,
// num_logical_experts a multiple of num_groups, and num_physical_experts >= num_logical_experts.
void check_eplb_sizes(int num_logical_experts, int num_physical_experts, int num_groups, int num_nodes,
                      int num_ranks);

// Runs DeepSeek's EPLB policy on `load` ([layers][logical experts], e.g. tokens routed to each expert):
//  1. packs expert groups onto nodes, balancing the group loads (same number of groups per node);
//  2. within each node, gives each extra replica to the expert with the highest load / replica count;
//  3. packs the node's replicas, each weighted load / replica count, onto the node's ranks
//     (num_physical_experts / num_ranks per rank).
// Exact and deterministic: equal loads keep ascending index order and ties go to the lowest index.
// Throws InvalidArgument (naming the argument) for inconsistent sizes or negative / non-finite loads.
RebalanceResult rebalance_experts(const std::vector<std::vector<double>>& load, int num_physical_experts,
                                  int num_groups, int num_nodes, int num_ranks);

// The placement before any rebalancing: physical expert p holds logical expert p % E, so the redundant
// slots repeat experts 0, 1, ... Replica r of an expert is its r-th slot in ascending order.
ReplicaPlacement initial_placement(int num_logical_experts, int num_physical_experts);

// Derives logical_to_physical and logical_replica_count from physical_to_logical (replicas numbered in
// ascending slot order). Throws InvalidArgument when an id is out of range or an expert has no replica.
ReplicaPlacement placement_from_physical_to_logical(const std::vector<std::int32_t>& physical_to_logical,
                                                    int num_logical_experts);

// Load seen by each rank when every expert's load is spread evenly over its replicas.
struct RankLoad {
  std::vector<double> per_rank;  // [num_ranks]: sum of load / replica count over the rank's slots
  double max = 0.0;
  double mean = 0.0;
  double balance_ratio = 1.0;  // max / mean (1 = perfectly balanced; 1 when there is no load at all)
};
RankLoad compute_rank_load(const std::vector<double>& layer_load, const ReplicaPlacement& placement,
                           int num_ranks);
// Same from measured per-physical-expert load (e.g. EplbState's counters), without spreading.
RankLoad compute_rank_load_from_physical(const std::vector<double>& physical_load, int num_ranks);

}  // namespace fusedmoe
