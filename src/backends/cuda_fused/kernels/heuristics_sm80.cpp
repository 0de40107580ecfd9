// The tile table's lookup, with one log line per new problem key at the `kernels` level.
#include "backends/cuda_fused/kernels/heuristics_sm80.hpp"

#include <algorithm>
#include <mutex>
#include <set>
#include <tuple>

#include "core/check.hpp"
#include "fusedmoe/log.hpp"

namespace fusedmoe::cuda_fused {

const TileConfig& tile_config(TileId id) {
  for (const TileConfig& config : kTileConfigs) {
    if (config.id == id) return config;
  }
  throw InternalError("[cuda_fused] unknown tile id");
}

const char* to_string(TileId id) {
  switch (id) {
    case TileId::m16:
      return "m16";
    case TileId::m32:
      return "m32";
    case TileId::m64:
      return "m64";
    case TileId::m128:
      return "m128";
    case TileId::m16_n32_s8:
      return "m16_n32_s8";
    case TileId::m16_n64_s8:
      return "m16_n64_s8";
  }
  return "?";
}

std::optional<TileId> tile_id_from_name(std::string_view name) {
  for (const TileConfig& config : kTileConfigs) {
    if (name == to_string(config.id)) return config.id;
  }
  return std::nullopt;
}

std::size_t max_tile_shared_memory() {
  std::size_t bytes = 0;
  for (const TileConfig& config : kTileConfigs) bytes = std::max(bytes, config.shared_memory_bytes);
  return bytes;
}

const TileConfig& choose_tile(const TileProblem& problem) {
  const std::int64_t pairs = problem.num_tokens * problem.top_k;
  const std::int64_t experts = std::max<std::int64_t>(problem.num_local_experts, 1);
  const std::int64_t rows_per_expert = (pairs + experts - 1) / experts;
  std::size_t index = 0;
  while (rows_per_expert > kTileBuckets[index].max_rows_per_expert) ++index;
  const TileConfig* chosen = &tile_config(kTileBuckets[index].tile);
  // Fewer blocks than SMs leaves the GPU idle: prefer a smaller tile then (more, thinner blocks).
  while (chosen->id != TileId::m16) {
    const std::int64_t active_experts = std::min(experts, pairs);
    const std::int64_t row_blocks =
        active_experts * ((rows_per_expert + chosen->block_m - 1) / chosen->block_m);
    const std::int64_t column_blocks = 2 * problem.intermediate_padded / chosen->block_n;
    if (row_blocks * column_blocks >= problem.num_sms) break;
    chosen = &tile_config(static_cast<TileId>(static_cast<int>(chosen->id) - 1));
  }
  if (log_enabled(LogLevel::debug)) {
    static std::mutex mutex;
    static std::set<std::tuple<std::int64_t, int, std::int64_t, std::int64_t>> seen;
    std::lock_guard lock(mutex);
    if (seen.emplace(problem.num_tokens, problem.top_k, problem.num_local_experts,
                     problem.intermediate_padded)
            .second) {
      log(LogLevel::debug, str_cat("[cuda_fused] M=", problem.num_tokens, " k=", problem.top_k, " E_local=",
                                   problem.num_local_experts, " I_pad=", problem.intermediate_padded, ": ",
                                   rows_per_expert, " rows per expert -> tile ", chosen->name));
    }
  }
  return *chosen;
}

}  // namespace fusedmoe::cuda_fused
