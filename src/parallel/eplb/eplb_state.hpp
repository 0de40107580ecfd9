// EPLB state of a model: logical experts (the model's) vs physical experts (weight replicas on ranks), the
// per-layer maps between them, and per-physical-expert load counters that feed the rebalancing policy.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "parallel/eplb/eplb_policy.hpp"

namespace fusedmoe {

// Sizes of the expert-parallel deployment the state balances.
struct EplbConfig {
  int num_layers = 1;
  int num_logical_experts = 0;   // E: experts of the model
  int num_physical_experts = 0;  // P >= E: replicas over all ranks (P - E redundant ones)
  int num_groups = 1;            // expert groups of the model (grouped routing); 1 if none
  int num_nodes = 1;
  int num_ranks = 1;  // P / num_ranks physical experts per rank
};

class EplbState {
 public:
  // Starts from the initial placement in every layer (physical p holds logical p % E) and zero load.
  explicit EplbState(const EplbConfig& config);

  const EplbConfig& config() const { return config_; }
  const ReplicaPlacement& placement(int layer) const;

  // The physical expert that serves `logical_expert` at flattened routing position `position`
  // (token * top_k + slot): replica position % replica_count, so a hot expert's tokens spread over its
  // replicas deterministically.
  std::int32_t physical_id(int layer, std::int32_t logical_expert, std::int64_t position) const;
  // physical_ids[i] = physical_id(layer, logical_ids[i], i) for flattened top-k ids [tokens * top_k].
  void map_to_physical(int layer, std::span<const std::int32_t> logical_ids,
                       std::span<std::int32_t> physical_ids) const;

  // Adds one to the load counter of each physical expert listed.
  void record(int layer, std::span<const std::int32_t> physical_ids);
  // [P] counts recorded for `layer` since the last reset.
  const std::vector<std::int64_t>& physical_load(int layer) const;
  // [layers][E]: the recorded load summed over each logical expert's replicas (the policy's input).
  std::vector<std::vector<double>> logical_load() const;
  void reset_load();

  // Runs the policy on the recorded load of every layer, installs the new placement, resets the counters
  // and returns the placement (the caller migrates the weights from the previous placement to it).
  RebalanceResult rebalance();
  // Installs a placement computed elsewhere (e.g. on one rank and broadcast); it must match the config.
  void apply(const RebalanceResult& result);

 private:
  void check_layer(int layer) const;

  EplbConfig config_;
  std::vector<ReplicaPlacement> placements_;            // [layers]
  std::vector<std::vector<std::int64_t>> load_counts_;  // [layers][P]
};

}  // namespace fusedmoe
