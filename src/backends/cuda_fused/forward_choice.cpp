// Forward choices: parsing their names, reading them from the environment and the tune tables, and the
// candidates `fusedmoe tune` times.
#include "backends/cuda_fused/forward_choice.hpp"

#include <algorithm>

#include "backends/cuda_common/cuda_check.hpp"
#include "backends/cuda_fused/builtin_tune_tables.hpp"
#include "backends/cuda_fused/kernels/launch.hpp"
#include "core/check.hpp"
#include "core/env.hpp"
#include "fusedmoe/platform.hpp"

namespace fusedmoe::cuda_fused {

ForwardChoice parse_forward_choice(std::string_view name) {
  if (name == "stream") return ForwardChoice{.stream = true, .tile = std::nullopt};
  if (name == "persistent") return ForwardChoice{.stream = false, .tile = std::nullopt, .persistent = true};
  if (const std::optional<TileId> tile = tile_id_from_name(name))
    return ForwardChoice{.stream = false, .tile = tile};
  if (const std::size_t slash = name.find('/'); slash != std::string_view::npos) {
    const std::optional<TileId> gemm1 = tile_id_from_name(name.substr(0, slash));
    const std::optional<TileId> gemm2 = tile_id_from_name(name.substr(slash + 1));
    FUSEDMOE_CHECK(gemm1 && gemm2, "[cuda_fused] forward choice '", name,
                   "': expected <GEMM1 tile>/<GEMM2 tile>, each one of ", tile_names());
    const TileConfig& first = tile_config(*gemm1);
    const TileConfig& second = tile_config(*gemm2);
    // GEMM2 reads GEMM1's intermediate by GEMM1's row blocks; the warp-specialised GEMM2 takes each one as
    // GEMM1 finishes it (the hand-over) and lays its rows out in GEMM1's sorted order.
    FUSEDMOE_CHECK(first.block_m == second.block_m && first.warp_specialized == second.warp_specialized,
                   "[cuda_fused] forward choice '", name,
                   "': the two tiles must have the same rows and both be warp-specialised (*_ws*) or both "
                   "not; got ",
                   first.block_m, " rows", first.warp_specialized ? " (ws)" : "", " and ", second.block_m,
                   " rows", second.warp_specialized ? " (ws)" : "");
    return ForwardChoice{.stream = false, .tile = gemm1, .gemm2_tile = gemm2};
  }
  throw InvalidArgument(
      str_cat("[cuda_fused] unknown forward choice '", name,
              "': expected persistent, stream, a tile or <GEMM1 tile>/<GEMM2 tile>: ", tile_names()));
}

std::optional<ForwardChoice> forced_choice_from_env() {
  const std::optional<std::string> path = env_string("FUSEDMOE_CUDA_FUSED_PATH");
  const std::optional<std::string> tile = env_string("FUSEDMOE_CUDA_FUSED_TILE");
  if (path && *path != "auto" && *path != "persistent" && *path != "stream" && *path != "tiled") {
    throw InvalidArgument(
        str_cat("FUSEDMOE_CUDA_FUSED_PATH='", *path, "': expected auto, persistent, stream or tiled"));
  }
  ForwardChoice choice;
  bool forced = false;
  if (tile && *tile != "auto") {
    try {
      const ForwardChoice parsed = parse_forward_choice(*tile);
      FUSEDMOE_CHECK(parsed.tile.has_value(), "not a tile");
      choice.tile = parsed.tile;
      choice.gemm2_tile = parsed.gemm2_tile;
    } catch (const InvalidArgument& error) {
      throw InvalidArgument(str_cat("FUSEDMOE_CUDA_FUSED_TILE='", *tile, "': expected a tile (", tile_names(),
                                    "), <GEMM1 tile>/<GEMM2 tile> or auto (", error.what(), ")"));
    }
    forced = true;
  }
  if (path && *path != "auto") {
    choice.stream = *path == "stream";
    choice.persistent = *path == "persistent";
    forced = true;
  }
  return forced ? std::optional<ForwardChoice>(choice) : std::nullopt;
}

namespace {

TuneKey tune_key(const MoeConfig& config) {
  return TuneKey{.backend = "cuda_fused",
                 .device_name = cuda::device_attributes(config.device.index).name,
                 .dtype = config.act_dtype,
                 .num_local_experts = config.num_local_experts(),
                 .hidden_size = config.hidden_size,
                 .intermediate_size = config.intermediate_size,
                 .top_k = config.routing.top_k};
}

// The first tile of `entry` that this build or device cannot run (wgmma without sm_90a code, or more shared
// memory than the device has), or nullopt. An entry is keyed by device model, not build.
std::optional<TileId> tile_not_runnable_here(const TuneEntry& entry, int device_index) {
  const cuda::DeviceAttributes& device = cuda::device_attributes(device_index);
  for (const TuneBucket& bucket : entry.buckets) {
    const ForwardChoice choice = parse_forward_choice(bucket.choice);
    for (const std::optional<TileId>& tile : {choice.tile, choice.gemm2_tile}) {
      if (tile && !tile_available(tile_config(*tile), device.compute_capability,
                                  device.shared_memory_per_block_optin)) {
        return tile;
      }
    }
  }
  return std::nullopt;
}

}  // namespace

std::vector<std::string> tune_candidates(const MoeConfig& config, std::int64_t num_tokens) {
  std::vector<std::string> names;
  const cuda::DeviceAttributes& device = cuda::device_attributes(config.device.index);
  if (persistent_path_fits(num_tokens, config.routing.top_k, device.compute_capability,
                           device.shared_memory_per_block_optin)) {
    names.emplace_back("persistent");
  }
  if (stream_path_fits(num_tokens, config.routing.top_k, config.num_local_experts(),
                       device.shared_memory_per_block_optin)) {
    names.emplace_back("stream");
  }
  for (const TileConfig& tile : kTileConfigs) {
    if (tile_available(tile, device.compute_capability, device.shared_memory_per_block_optin)) {
      names.emplace_back(to_string(tile.id));
    }
  }
  // Decode (one 16-row block per routed expert): GEMM2 streams half of GEMM1's bytes, K = I deep, and may
  // prefer another 16-row tile than GEMM1.
  const std::int64_t experts = std::max<std::int64_t>(config.num_local_experts(), 1);
  if ((num_tokens * config.routing.top_k + experts - 1) / experts <= kStreamingMaxRowsPerExpert) {
    for (const TileConfig& gemm1 : kTileConfigs) {
      for (const TileConfig& gemm2 : kTileConfigs) {
        if (gemm1.id != gemm2.id && gemm1.block_m == 16 && gemm2.block_m == 16 &&
            tile_available(gemm1, device.compute_capability, device.shared_memory_per_block_optin) &&
            tile_available(gemm2, device.compute_capability, device.shared_memory_per_block_optin)) {
          names.emplace_back(str_cat(to_string(gemm1.id), "/", to_string(gemm2.id)));
        }
      }
    }
  }
  return names;
}

std::vector<std::int64_t> tune_token_counts(const MoeConfig& config, std::vector<std::int64_t> tokens) {
  if (tokens.empty()) return tokens;
  const std::int64_t last = tokens.back();
  const std::int64_t experts = std::max<std::int64_t>(config.num_local_experts(), 1);
  const std::int64_t top_k = std::max(config.routing.top_k, 1);
  for (const std::int64_t rows : kRegimeLastRowsPerExpert) {
    const std::int64_t regime_end = rows * experts / top_k;  // the largest M with ceil(M k / E) <= rows
    if (regime_end >= 1 && regime_end < last) tokens.push_back(regime_end);
  }
  std::sort(tokens.begin(), tokens.end());
  tokens.erase(std::unique(tokens.begin(), tokens.end()), tokens.end());
  return tokens;
}

std::optional<TuneEntry> tuned_choices(const MoeConfig& config) {
  std::optional<TuneEntry> tuned;
  if (const std::optional<std::string> file = env_string("FUSEDMOE_TUNE_FILE")) {
    tuned = tuned_entry_from_env(tune_key(config));
    const std::vector<TuneBucket> no_buckets;
    for (const TuneBucket& bucket : tuned ? tuned->buckets : no_buckets) {
      try {  // fail early, naming the file
        (void)parse_forward_choice(bucket.choice);
      } catch (const InvalidArgument& error) {
        throw InvalidArgument(str_cat("FUSEDMOE_TUNE_FILE=", *file, ", bucket max_tokens ", bucket.max_tokens,
                                      ": ", error.what()));
      }
    }
    // Refused now, naming the file, rather than at the first forward in that bucket.
    const std::optional<TileId> tile = tuned && Platform::detect(config.device).cuda.available
                                           ? tile_not_runnable_here(*tuned, config.device.index)
                                           : std::nullopt;
    FUSEDMOE_CHECK(
        !tile, "FUSEDMOE_TUNE_FILE=", *file, ": tile ", tile ? to_string(*tile) : "",
        " cannot run in this build on ", to_string(config.device),
        " (wgmma tiles need sm_90a code and a Hopper GPU): re-run `fusedmoe tune` with this build");
  }
  // A built-in entry naming a tile that cannot run here is left to the heuristic instead.
  if (!tuned && Platform::detect(config.device).cuda.available) {
    tuned = builtin_tune_entry(tune_key(config));
    if (tuned && tile_not_runnable_here(*tuned, config.device.index)) tuned.reset();
  }
  return tuned;
}

}  // namespace fusedmoe::cuda_fused
