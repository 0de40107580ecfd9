// The shape flags shared by run, check and backends: a preset, optionally overridden field by field.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <optional>
#include <string>

#include "fusedmoe/config.hpp"

namespace fusedmoe::cli {

struct ProblemOptions {
  std::string preset{"small"};
  std::int64_t tokens = 64;
  std::optional<std::int64_t> hidden, intermediate, experts;
  std::optional<int> top_k, num_groups, topk_group;
  std::optional<float> routed_scaling;
  std::optional<std::string> routing;
  std::string dtype{"bf16"};
  std::optional<std::string> weight_dtype;
  std::string activation{"silu"};
  int shared_experts = 0;
  std::int64_t shared_intermediate = 0;
  bool shared_gate = false;
  std::string dispatch{"local"};
  int ep = 1;                              // expert-parallel ranks (run under mpirun -np ep)
  std::string ep_mode{"all2all"};          // allgather, all2all or all2all_batched
  std::int64_t batched_capacity = 0;       // 0: MoeConfig's default (ParallelConfig::batched_capacity)
  std::int64_t batched_rank_capacity = 0;  // 0: never drops (ParallelConfig::batched_rank_capacity)
  std::string placement{"linear"};
  std::string device{"cpu"};
  std::uint64_t seed = 0;
  int threads = 0;
  bool json = false;

  void add_to(CLI::App& app);
  // The MoeConfig these flags describe (validated), for one device (ep flags not applied).
  MoeConfig config() const;
  // The same with expert parallelism applied for `rank` (dispatch = ep_mode, ep_size = ep).
  MoeConfig parallel_config(int rank) const;
};

}  // namespace fusedmoe::cli
