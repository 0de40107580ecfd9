// EplbState: the per-layer logical <-> physical expert maps, replica selection by position and the load
// counters that the rebalancing policy reads.
#include "parallel/eplb/eplb_state.hpp"

#include <algorithm>

#include "core/check.hpp"

namespace fusedmoe {

namespace {
// Checks that `placement` is a consistent placement of E logical experts on P physical slots.
void check_placement(const ReplicaPlacement& placement, int layer, int num_logical, int num_physical) {
  FUSEDMOE_CHECK(placement.physical_to_logical.size() == static_cast<std::size_t>(num_physical),
                 "[eplb] layer ", layer, " physical_to_logical has ", placement.physical_to_logical.size(),
                 " entries: expected num_physical_experts = ", num_physical);
  FUSEDMOE_CHECK(placement.logical_replica_count.size() == static_cast<std::size_t>(num_logical) &&
                     placement.logical_to_physical.size() == static_cast<std::size_t>(num_logical),
                 "[eplb] layer ", layer, " logical_replica_count / logical_to_physical have ",
                 placement.logical_replica_count.size(), " / ", placement.logical_to_physical.size(),
                 " entries: expected num_logical_experts = ", num_logical);
  for (int logical_idx = 0; logical_idx < num_logical; ++logical_idx) {
    const std::vector<std::int32_t>& replicas = placement.logical_to_physical[logical_idx];
    const std::int32_t count = placement.logical_replica_count[logical_idx];
    FUSEDMOE_CHECK(count >= 1 && static_cast<std::size_t>(count) <= replicas.size(), "[eplb] layer ", layer,
                   " logical_replica_count[", logical_idx, "] = ", count, ": expected 1..", replicas.size());
    for (std::size_t replica_idx = 0; replica_idx < replicas.size(); ++replica_idx) {
      const std::int32_t physical_idx = replicas[replica_idx];
      if (replica_idx >= static_cast<std::size_t>(count)) {
        FUSEDMOE_CHECK(physical_idx == -1, "[eplb] layer ", layer, " logical_to_physical[", logical_idx, "][",
                       replica_idx, "] = ", physical_idx, ": expected -1 past the replica count ", count);
        continue;
      }
      FUSEDMOE_CHECK(physical_idx >= 0 && physical_idx < num_physical &&
                         placement.physical_to_logical[physical_idx] == logical_idx,
                     "[eplb] layer ", layer, " logical_to_physical[", logical_idx, "][", replica_idx,
                     "] = ", physical_idx, ": expected a physical slot that holds logical expert ",
                     logical_idx);
    }
  }
  std::int64_t total = 0;
  for (const std::int32_t count : placement.logical_replica_count) total += count;
  FUSEDMOE_CHECK(total == num_physical, "[eplb] layer ", layer, " replica counts sum to ", total,
                 ": expected num_physical_experts = ", num_physical);
}
}  // namespace

EplbState::EplbState(const EplbConfig& config) : config_(config) {
  FUSEDMOE_CHECK(config.num_layers >= 1, "[eplb] num_layers = ", config.num_layers, ": expected >= 1");
  check_eplb_sizes(config.num_logical_experts, config.num_physical_experts, config.num_groups,
                   config.num_nodes, config.num_ranks);
  placements_.assign(config.num_layers,
                     initial_placement(config.num_logical_experts, config.num_physical_experts));
  load_counts_.assign(config.num_layers, std::vector<std::int64_t>(config.num_physical_experts, 0));
}

void EplbState::check_layer(int layer) const {
  FUSEDMOE_CHECK(layer >= 0 && layer < config_.num_layers, "[eplb] layer = ", layer, ": expected 0..",
                 config_.num_layers - 1);
}

const ReplicaPlacement& EplbState::placement(int layer) const {
  check_layer(layer);
  return placements_[layer];
}

std::int32_t EplbState::physical_id(int layer, std::int32_t logical_expert, std::int64_t position) const {
  check_layer(layer);
  FUSEDMOE_CHECK(logical_expert >= 0 && logical_expert < config_.num_logical_experts,
                 "[eplb] logical expert ", logical_expert, ": expected 0..", config_.num_logical_experts - 1);
  FUSEDMOE_CHECK(position >= 0, "[eplb] position = ", position, ": expected >= 0");
  const ReplicaPlacement& placement = placements_[layer];
  const std::int32_t count = placement.logical_replica_count[logical_expert];
  return placement.logical_to_physical[logical_expert][position % count];
}

void EplbState::map_to_physical(int layer, std::span<const std::int32_t> logical_ids,
                                std::span<std::int32_t> physical_ids) const {
  FUSEDMOE_CHECK(logical_ids.size() == physical_ids.size(), "[eplb] physical_ids has ", physical_ids.size(),
                 " entries: expected ", logical_ids.size(), " (one per logical id)");
  for (std::size_t position = 0; position < logical_ids.size(); ++position) {
    physical_ids[position] = physical_id(layer, logical_ids[position], static_cast<std::int64_t>(position));
  }
}

void EplbState::record(int layer, std::span<const std::int32_t> physical_ids) {
  check_layer(layer);
  std::vector<std::int64_t>& counts = load_counts_[layer];
  for (const std::int32_t physical_idx : physical_ids) {
    FUSEDMOE_CHECK(physical_idx >= 0 && physical_idx < config_.num_physical_experts,
                   "[eplb] physical expert ", physical_idx, ": expected 0..",
                   config_.num_physical_experts - 1);
    ++counts[physical_idx];
  }
}

const std::vector<std::int64_t>& EplbState::physical_load(int layer) const {
  check_layer(layer);
  return load_counts_[layer];
}

std::vector<std::vector<double>> EplbState::logical_load() const {
  std::vector<std::vector<double>> load(config_.num_layers,
                                        std::vector<double>(config_.num_logical_experts, 0.0));
  for (int layer_idx = 0; layer_idx < config_.num_layers; ++layer_idx) {
    const std::vector<std::int32_t>& physical_to_logical = placements_[layer_idx].physical_to_logical;
    for (int physical_idx = 0; physical_idx < config_.num_physical_experts; ++physical_idx) {
      load[layer_idx][physical_to_logical[physical_idx]] +=
          static_cast<double>(load_counts_[layer_idx][physical_idx]);
    }
  }
  return load;
}

void EplbState::reset_load() {
  for (std::vector<std::int64_t>& counts : load_counts_) std::fill(counts.begin(), counts.end(), 0);
}

RebalanceResult EplbState::rebalance() {
  RebalanceResult result = rebalance_experts(logical_load(), config_.num_physical_experts, config_.num_groups,
                                             config_.num_nodes, config_.num_ranks);
  apply(result);
  return result;
}

void EplbState::apply(const RebalanceResult& result) {
  FUSEDMOE_CHECK(result.layers.size() == static_cast<std::size_t>(config_.num_layers),
                 "[eplb] placement has ", result.layers.size(),
                 " layers: expected num_layers = ", config_.num_layers);
  for (int layer_idx = 0; layer_idx < config_.num_layers; ++layer_idx) {
    check_placement(result.layers[layer_idx], layer_idx, config_.num_logical_experts,
                    config_.num_physical_experts);
  }
  placements_ = result.layers;
  reset_load();
}

}  // namespace fusedmoe
