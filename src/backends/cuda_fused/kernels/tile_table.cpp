// The tile table's lookup, with one log line per new problem key at the `kernels` level.
#include "backends/cuda_fused/kernels/tile_table.hpp"

#include <algorithm>
#include <mutex>
#include <set>
#include <span>
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
    case TileId::m16_n64_k128:
      return "m16_n64_k128";
    case TileId::m16_n128_k128:
      return "m16_n128_k128";
    case TileId::wg64_n128:
      return "wg64_n128";
    case TileId::wg64_n256:
      return "wg64_n256";
    case TileId::wg128_n128:
      return "wg128_n128";
    case TileId::wg128_n256:
      return "wg128_n256";
    case TileId::wg64_n256_ws:
      return "wg64_n256_ws";
    case TileId::wg128_n256_ws:
      return "wg128_n256_ws";
    case TileId::wg64_n128_ws:
      return "wg64_n128_ws";
    case TileId::wg128_n256_ws_pair:
      return "wg128_n256_ws_pair";
    case TileId::wg192_n192_ws:
      return "wg192_n192_ws";
  }
  return "?";
}

std::optional<TileId> tile_id_from_name(std::string_view name) {
  for (const TileConfig& config : kTileConfigs) {
    if (name == to_string(config.id)) return config.id;
  }
  return std::nullopt;
}

std::string tile_names() {
  std::string names;
  for (const TileConfig& config : kTileConfigs) append_joined(names, ", ", to_string(config.id));
  return names;
}

std::size_t max_tile_shared_memory() {
  std::size_t bytes = 0;
  for (const TileConfig& config : kTileConfigs) {
    if (!config.wgmma && !config.large_shared) bytes = std::max(bytes, config.shared_memory_bytes);
  }
  return bytes;
}

bool wgmma_tiles_available(int compute_capability, std::size_t shared_memory_optin) {
#if FUSEDMOE_CUDA_FUSED_SM90A
  if (compute_capability != 90) return false;  // sm_90a code runs on compute capability 9.0 only
  for (const TileConfig& config : kTileConfigs) {
    if (config.wgmma && config.shared_memory_bytes > shared_memory_optin) return false;
  }
  return true;
#else
  (void)compute_capability;
  (void)shared_memory_optin;
  return false;
#endif
}

bool tile_available(const TileConfig& tile, int compute_capability, std::size_t shared_memory_optin) {
  if (tile.wgmma) return wgmma_tiles_available(compute_capability, shared_memory_optin);
  return compute_capability >= 80 && tile.shared_memory_bytes <= shared_memory_optin;
}

namespace {

// Hopper: wgmma tiles from 14 rows per expert on (tile_table.hpp has the measurements): the one-consumer
// warp-specialised tile (64 rows) up to 56 rows per expert, beyond it the one with two (128 rows), except at
// 121-176 rows per expert, where many experts' rows (uniform routing) fit one block of the three-warpgroup
// tile (192 rows) but not one of 128 rows (on an H200 up to 21% faster there on all four bench presets,
// 1.4-4.6% slower at 192 rows; since its all-padding warpgroups skip their MMAs, 1.1-3.0% faster at 121 rows
// and 2.2-8.1% at 124 on three presets, 1-10% slower at 112-118); down the list when a grid would leave SMs
// idle. nullptr: no wgmma tile (the streaming or mma.sync tiles).
const TileConfig* choose_wgmma_tile(const TileProblem& problem, std::int64_t rows_per_expert,
                                    std::int64_t active_experts) {
  if (!problem.wgmma || rows_per_expert < kWgmmaMinRowsPerExpert) return nullptr;
  static constexpr TileId kOneGroup[] = {TileId::wg64_n256_ws, TileId::wg64_n128};
  static constexpr TileId kTwoGroups[] = {TileId::wg128_n256_ws, TileId::wg128_n128, TileId::wg64_n128};
  static constexpr TileId kThreeGroups[] = {TileId::wg192_n192_ws, TileId::wg128_n256_ws, TileId::wg128_n128,
                                            TileId::wg64_n128};
  const std::span<const TileId> candidates =
      rows_per_expert > kThreeGroupsMaxRowsPerExpert    ? std::span<const TileId>(kTwoGroups)
      : rows_per_expert >= kThreeGroupsMinRowsPerExpert ? std::span<const TileId>(kThreeGroups)
      : rows_per_expert > kOneGroupMaxRowsPerExpert     ? std::span<const TileId>(kTwoGroups)
                                                        : std::span<const TileId>(kOneGroup);
  for (TileId id : candidates) {
    const TileConfig& tile = tile_config(id);
    const std::int64_t row_blocks = active_experts * ((rows_per_expert + tile.block_m - 1) / tile.block_m);
    const std::int64_t column_blocks = (2 * problem.intermediate_padded + tile.block_n - 1) / tile.block_n;
    if (row_blocks * column_blocks >= problem.num_sms) return &tile;
  }
  return nullptr;
}

// Up to 16 rows per expert (one row block each; on Hopper the wgmma tiles take over from 14), where the large
// tiles fit: the 128-column one unless its GEMM1 grid leaves SMs without a block; then the 64-column one.
// nullptr: neither fits this device.
const TileConfig* choose_streaming_tile(const TileProblem& problem, std::int64_t rows_per_expert,
                                        std::int64_t active_experts) {
  if (rows_per_expert > kStreamingMaxRowsPerExpert) return nullptr;
  const TileConfig& wide = tile_config(TileId::m16_n128_k128);
  const TileConfig& narrow = tile_config(TileId::m16_n64_k128);
  const bool wide_fits = wide.shared_memory_bytes <= problem.shared_memory_optin;
  const bool narrow_fits = narrow.shared_memory_bytes <= problem.shared_memory_optin;
  const std::int64_t wide_blocks = active_experts * (2 * problem.intermediate_padded / wide.block_n);
  if (wide_fits && (wide_blocks >= problem.num_sms || !narrow_fits)) return &wide;
  return narrow_fits ? &narrow : nullptr;
}

}  // namespace

const TileConfig& choose_tile(const TileProblem& problem) {
  const std::int64_t pairs = problem.num_tokens * problem.top_k;
  const std::int64_t experts = std::max<std::int64_t>(problem.num_local_experts, 1);
  const std::int64_t rows_per_expert = (pairs + experts - 1) / experts;
  const std::int64_t active_experts = std::min(experts, pairs);
  std::size_t index = 0;
  while (rows_per_expert > kTileBuckets[index].max_rows_per_expert) ++index;
  const TileConfig* chosen = choose_wgmma_tile(problem, rows_per_expert, active_experts);
  if (chosen == nullptr) chosen = choose_streaming_tile(problem, rows_per_expert, active_experts);
  if (chosen == nullptr) chosen = &tile_config(kTileBuckets[index].tile);
  // Fewer blocks than SMs leaves the GPU idle: step down the chain m128 -> m64 -> m32 -> m16 then (more,
  // thinner blocks).
  while (!chosen->wgmma && !chosen->large_shared && chosen->id != TileId::m16) {
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
