// `fusedmoe eplb`: expert-parallel load balancing. Simulates a skewed routing trace and shows the per-rank
// load before and after a rebalance, or (--load) runs the policy alone on a given per-layer load matrix.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "cli/validators.hpp"
#include "core/check.hpp"
#include "core/random.hpp"
#include "parallel/eplb/eplb_policy.hpp"
#include "parallel/eplb/eplb_state.hpp"

namespace fusedmoe::cli {

namespace {

struct EplbOptions {
  std::string load_path;
  int experts = 64;
  std::optional<int> physical_experts, groups, nodes, ranks;
  int layers = 4;
  std::int64_t tokens = 4096;
  int top_k = 6;
  double skew = 1.0;
  std::uint64_t seed = 0;
  bool json = false;
};

// Uniform in (0, 1) from a counter.
double uniform(std::uint64_t counter) {
  return (static_cast<double>(mix64(counter) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

// One layer's routing trace, flattened [tokens * top_k]: each token picks top_k distinct experts with
// probability proportional to a Zipf popularity 1 / rank^skew, over a seeded random ranking of the experts
// (so each layer has its own hot experts). Sampling without replacement uses Efraimidis-Spirakis keys
// log(u) / weight, the top_k largest winning.
std::vector<std::int32_t> simulate_layer_trace(const EplbOptions& options, int layer) {
  const int num_experts = options.experts;
  const std::uint64_t layer_seed = mix64(options.seed ^ mix64(static_cast<std::uint64_t>(layer) + 1));
  std::vector<int> ranking(num_experts);
  std::iota(ranking.begin(), ranking.end(), 0);
  for (int index = num_experts - 1; index > 0; --index) {  // Fisher-Yates
    const auto pick = static_cast<int>(mix64(layer_seed + static_cast<std::uint64_t>(index)) %
                                       static_cast<std::uint64_t>(index + 1));
    std::swap(ranking[index], ranking[pick]);
  }
  std::vector<double> popularity(num_experts);
  for (int position = 0; position < num_experts; ++position) {
    popularity[ranking[position]] = 1.0 / std::pow(static_cast<double>(position + 1), options.skew);
  }

  std::vector<std::int32_t> trace(static_cast<std::size_t>(options.tokens) * options.top_k);
  std::vector<std::pair<double, int>> keys(num_experts);
  const std::uint64_t token_seed = mix64(layer_seed ^ 0x5eed5eed5eed5eedull);
  for (std::int64_t token_idx = 0; token_idx < options.tokens; ++token_idx) {
    const std::uint64_t base = mix64(token_seed + static_cast<std::uint64_t>(token_idx));
    for (int expert_idx = 0; expert_idx < num_experts; ++expert_idx) {
      keys[expert_idx] = {
          std::log(uniform(base + static_cast<std::uint64_t>(expert_idx))) / popularity[expert_idx],
          expert_idx};
    }
    std::partial_sort(keys.begin(), keys.begin() + options.top_k, keys.end(),
                      [](const auto& a, const auto& b) {
                        return a.first > b.first || (a.first == b.first && a.second < b.second);
                      });
    for (int slot = 0; slot < options.top_k; ++slot)
      trace[token_idx * options.top_k + slot] = keys[slot].second;
  }
  return trace;
}

std::string join(const std::vector<double>& values, int precision) {
  std::ostringstream text;
  text << std::fixed << std::setprecision(precision);
  for (std::size_t index = 0; index < values.size(); ++index) text << (index ? " " : "") << values[index];
  return text.str();
}

std::string join(const std::vector<std::int32_t>& values) {
  std::ostringstream text;
  for (std::size_t index = 0; index < values.size(); ++index) text << (index ? " " : "") << values[index];
  return text.str();
}

std::string policy_name(bool hierarchical) {
  return hierarchical ? "hierarchical" : "global";
}

void simulate(const EplbOptions& options) {
  const EplbConfig config{.num_layers = options.layers,
                          .num_logical_experts = options.experts,
                          .num_physical_experts = options.physical_experts.value_or(80),
                          .num_groups = options.groups.value_or(8),
                          .num_nodes = options.nodes.value_or(2),
                          .num_ranks = options.ranks.value_or(8)};
  FUSEDMOE_CHECK(options.top_k <= options.experts, "[eplb] --topk ", options.top_k,
                 ": expected at most --experts ", options.experts);
  FUSEDMOE_CHECK(options.skew >= 0.0 && std::isfinite(options.skew), "[eplb] --skew ", options.skew,
                 ": expected a finite value >= 0");
  EplbState state(config);

  // Route every layer's trace through the initial placement, recording the load, then rebalance on it and
  // route the same trace through the new placement.
  std::vector<std::vector<std::int32_t>> traces(config.num_layers);
  std::vector<std::int32_t> physical_ids;
  std::vector<RankLoad> before(config.num_layers), after(config.num_layers);
  for (int layer_idx = 0; layer_idx < config.num_layers; ++layer_idx) {
    traces[layer_idx] = simulate_layer_trace(options, layer_idx);
    physical_ids.resize(traces[layer_idx].size());
    state.map_to_physical(layer_idx, traces[layer_idx], physical_ids);
    state.record(layer_idx, physical_ids);
    const std::vector<std::int64_t>& counts = state.physical_load(layer_idx);
    before[layer_idx] =
        compute_rank_load_from_physical(std::vector<double>(counts.begin(), counts.end()), config.num_ranks);
  }
  const RebalanceResult result = state.rebalance();
  for (int layer_idx = 0; layer_idx < config.num_layers; ++layer_idx) {
    state.map_to_physical(layer_idx, traces[layer_idx], physical_ids);
    state.record(layer_idx, physical_ids);
    const std::vector<std::int64_t>& counts = state.physical_load(layer_idx);
    after[layer_idx] =
        compute_rank_load_from_physical(std::vector<double>(counts.begin(), counts.end()), config.num_ranks);
  }

  if (options.json) {
    for (int layer_idx = 0; layer_idx < config.num_layers; ++layer_idx) {
      const ReplicaPlacement& placement = result.layers[layer_idx];
      print_json_line({{"layer", layer_idx},
                       {"policy", policy_name(result.hierarchical)},
                       {"logical_experts", config.num_logical_experts},
                       {"physical_experts", config.num_physical_experts},
                       {"ranks", config.num_ranks},
                       {"tokens", options.tokens},
                       {"topk", options.top_k},
                       {"rank_load_before", before[layer_idx].per_rank},
                       {"balance_before", before[layer_idx].balance_ratio},
                       {"rank_load_after", after[layer_idx].per_rank},
                       {"balance_after", after[layer_idx].balance_ratio},
                       {"physical_to_logical", placement.physical_to_logical},
                       {"logical_replica_count", placement.logical_replica_count}});
    }
    return;
  }
  std::cout << "eplb simulation: " << config.num_layers << " layers, " << config.num_logical_experts
            << " logical -> " << config.num_physical_experts << " physical experts ("
            << config.num_physical_experts - config.num_logical_experts << " redundant), "
            << config.num_groups << " groups, " << config.num_nodes << " nodes, " << config.num_ranks
            << " ranks (" << config.num_physical_experts / config.num_ranks << " experts each), "
            << policy_name(result.hierarchical) << " policy\n"
            << "trace: " << options.tokens << " tokens x top-" << options.top_k << " per layer, Zipf skew "
            << options.skew << ", seed " << options.seed
            << "; load = routed token slots per rank, the same trace before and after\n\n"
            << std::left << std::setw(7) << "layer" << std::setw(12) << "placement" << std::setw(10)
            << "max/mean" << std::setw(10) << "max" << std::setw(11) << "mean"
            << "load per rank\n";
  double sum_before = 0.0, sum_after = 0.0;
  for (int layer_idx = 0; layer_idx < config.num_layers; ++layer_idx) {
    for (const bool rebalanced : {false, true}) {
      const RankLoad& load = rebalanced ? after[layer_idx] : before[layer_idx];
      std::cout << std::left << std::setw(7) << layer_idx << std::setw(12)
                << (rebalanced ? "rebalanced" : "initial") << std::fixed << std::setprecision(3)
                << std::setw(10) << load.balance_ratio << std::setprecision(0) << std::setw(10) << load.max
                << std::setprecision(1) << std::setw(11) << load.mean << join(load.per_rank, 0) << "\n";
    }
    sum_before += before[layer_idx].balance_ratio;
    sum_after += after[layer_idx].balance_ratio;
  }
  std::cout << std::setprecision(3) << "\nmean max/mean over layers: " << sum_before / config.num_layers
            << " (initial) -> " << sum_after / config.num_layers << " (rebalanced)\n";
}

// Reads [[load of expert 0, 1, ...], ...] (one row per layer; a flat list is one layer).
std::vector<std::vector<double>> read_load_file(const std::string& path) {
  std::ifstream file(path);
  if (!file) throw IoError(str_cat("[eplb] --load ", path, ": cannot open the file"));
  nlohmann::json document;
  try {
    document = nlohmann::json::parse(file);
  } catch (const nlohmann::json::exception& error) {
    throw IoError(str_cat("[eplb] --load ", path, ": not valid JSON: ", error.what()));
  }
  const char* expected = ": expected [[numbers, one per logical expert], ...], one row per layer";
  if (document.is_array() && !document.empty() && document.front().is_number())
    document = nlohmann::json::array({document});
  if (!document.is_array() || document.empty())
    throw IoError(str_cat("[eplb] --load ", path, ": not a non-empty array", expected));
  std::vector<std::vector<double>> load;
  for (std::size_t layer_idx = 0; layer_idx < document.size(); ++layer_idx) {
    const nlohmann::json& row = document[layer_idx];
    if (!row.is_array())
      throw IoError(str_cat("[eplb] --load ", path, ": row ", layer_idx, " is not an array", expected));
    std::vector<double>& values = load.emplace_back();
    for (std::size_t expert_idx = 0; expert_idx < row.size(); ++expert_idx) {
      if (!row[expert_idx].is_number()) {
        throw IoError(str_cat("[eplb] --load ", path, ": load[", layer_idx, "][", expert_idx,
                              "] = ", row[expert_idx].dump(), " is not a number", expected));
      }
      values.push_back(row[expert_idx].get<double>());
    }
  }
  return load;
}

void run_policy(const EplbOptions& options) {
  FUSEDMOE_CHECK(options.physical_experts.has_value(),
                 "[eplb] --load needs --physical-experts: expected the number of physical experts P");
  const std::vector<std::vector<double>> load = read_load_file(options.load_path);
  const int num_ranks = options.ranks.value_or(1);
  const RebalanceResult result = rebalance_experts(
      load, *options.physical_experts, options.groups.value_or(1), options.nodes.value_or(1), num_ranks);
  const int num_logical = static_cast<int>(load.front().size());
  const ReplicaPlacement initial = initial_placement(num_logical, *options.physical_experts);
  if (!options.json) {
    std::cout
        << "eplb policy: " << load.size() << " layers, " << num_logical << " logical -> "
        << *options.physical_experts << " physical experts, " << options.groups.value_or(1) << " groups, "
        << options.nodes.value_or(1) << " nodes, " << num_ranks << " ranks, "
        << policy_name(result.hierarchical) << " policy\n"
        << "rank load = sum of load / replica count over the rank's experts; initial placement: physical p "
           "holds logical p % "
        << num_logical << "\n";
  }
  for (std::size_t layer_idx = 0; layer_idx < load.size(); ++layer_idx) {
    const ReplicaPlacement& placement = result.layers[layer_idx];
    const RankLoad before = compute_rank_load(load[layer_idx], initial, num_ranks);
    const RankLoad after = compute_rank_load(load[layer_idx], placement, num_ranks);
    if (options.json) {
      print_json_line({{"layer", layer_idx},
                       {"policy", policy_name(result.hierarchical)},
                       {"physical_to_logical", placement.physical_to_logical},
                       {"logical_replica_count", placement.logical_replica_count},
                       {"logical_to_physical", placement.logical_to_physical},
                       {"rank_load_before", before.per_rank},
                       {"balance_before", before.balance_ratio},
                       {"rank_load_after", after.per_rank},
                       {"balance_after", after.balance_ratio}});
      continue;
    }
    const std::size_t physical_per_rank = placement.physical_to_logical.size() / num_ranks;
    std::cout << "\nlayer " << layer_idx << ": max/mean " << std::fixed << std::setprecision(3)
              << before.balance_ratio << " (initial) -> " << after.balance_ratio << " (rebalanced)\n"
              << "  " << std::left << std::setw(6) << "rank" << std::setw(12) << "load"
              << "logical expert in each physical slot (slot:expert)\n";
    for (int rank_idx = 0; rank_idx < num_ranks; ++rank_idx) {
      std::ostringstream slots;
      for (std::size_t slot = rank_idx * physical_per_rank; slot < (rank_idx + 1) * physical_per_rank;
           ++slot) {
        slots << (slot == rank_idx * physical_per_rank ? "" : " ") << slot << ":"
              << placement.physical_to_logical[slot];
      }
      std::cout << "  " << std::setw(6) << rank_idx << std::setprecision(2) << std::setw(12)
                << after.per_rank[rank_idx] << slots.str() << "\n";
    }
    std::cout << "  replicas per logical expert: " << join(placement.logical_replica_count) << "\n";
  }
}

}  // namespace

void add_eplb_command(CLI::App& app) {
  auto options = std::make_shared<EplbOptions>();
  CLI::App* command =
      app.add_subcommand("eplb",
                         "Expert-parallel load balancing: simulate a skewed routing trace and show per-rank "
                         "load before and after a "
                         "rebalance, or (--load) run the rebalancing policy on a given load matrix");
  CLI::Option* load = command->add_option(
      "--load", options->load_path,
      "JSON file [[load of each logical expert], ...] (one row per layer): run the policy alone on it");
  command
      ->add_option(
          "--physical-experts", options->physical_experts,
          "Physical experts P (replicas over all ranks; default 80 when simulating, required with --load)")
      ->check(at_least(1));
  command->add_option("--groups", options->groups, "Expert groups G (default 8 when simulating, else 1)")
      ->check(at_least(1));
  command->add_option("--nodes", options->nodes, "Nodes N (default 2 when simulating, else 1)")
      ->check(at_least(1));
  command
      ->add_option("--ranks", options->ranks, "Expert-parallel ranks R (default 8 when simulating, else 1)")
      ->check(at_least(1));
  const std::vector<CLI::Option*> simulation_options{
      command->add_option("--experts", options->experts, "Logical experts E of the simulated model")
          ->capture_default_str()
          ->check(at_least(1)),
      command->add_option("--layers", options->layers, "Simulated MoE layers")
          ->capture_default_str()
          ->check(at_least(1)),
      command->add_option("--tokens,-m", options->tokens, "Tokens in the simulated trace, per layer")
          ->capture_default_str()
          ->check(at_least(0)),
      command->add_option("--topk", options->top_k, "Experts per token k")
          ->capture_default_str()
          ->check(at_least(1)),
      command->add_option("--skew", options->skew, "Zipf exponent of expert popularity (0: uniform)")
          ->capture_default_str()
          ->check(at_least_real(0.0)),
      command->add_option("--seed", options->seed, "Seed of the simulated trace")->capture_default_str()};
  for (CLI::Option* option : simulation_options) load->excludes(option);
  command->add_flag("--json", options->json, "One JSON object per layer and line instead of a table");
  command->callback([options] {
    if (options->load_path.empty()) {
      simulate(*options);
    } else {
      run_policy(*options);
    }
  });
}

}  // namespace fusedmoe::cli
