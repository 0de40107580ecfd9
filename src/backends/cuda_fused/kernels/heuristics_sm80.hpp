// Tile configurations of cuda_fused's mma.sync (sm_80+) grouped GEMMs, and the table that picks one
// per M bucket. Compiled in; `FUSEDMOE_LOG_LEVEL=kernels` logs the entry each problem key uses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

namespace fusedmoe::cuda_fused {

// m16 .. m128: the heuristic's chain (choose_tile steps down it). The decode tiles after it (16 rows, narrow
// column blocks, deep pipelines: more blocks and more bytes in flight when each expert has a token or two)
// run only when forced or picked by a `fusedmoe tune` table.
enum class TileId { m16, m32, m64, m128, m16_n32_s8, m16_n64_s8 };

// One block computes block_m sorted rows x block_n weight rows (GEMM1: block_n / 2 intermediate columns,
// gate and up interleaved; GEMM2: block_n output columns), block_k deep per pipeline stage.
struct TileConfig {
  TileId id;
  int block_m;
  int block_n;
  int block_k;
  int warps_m;
  int warps_n;
  int stages;
  std::size_t shared_memory_bytes;  // (block_m + block_n) * (block_k + 8) * 2 bytes * stages
  const char* name;
};

inline constexpr std::size_t tile_shared_memory(int block_m, int block_n, int block_k, int stages) {
  return static_cast<std::size_t>(block_m + block_n) * static_cast<std::size_t>(block_k + 8) * 2 *
         static_cast<std::size_t>(stages);
}

inline constexpr TileConfig kTileConfigs[] = {
    {TileId::m16, 16, 64, 64, 1, 2, 4, tile_shared_memory(16, 64, 64, 4), "m16_n64_k64_w1x2_s4"},
    {TileId::m32, 32, 64, 64, 2, 2, 3, tile_shared_memory(32, 64, 64, 3), "m32_n64_k64_w2x2_s3"},
    {TileId::m64, 64, 128, 32, 2, 2, 4, tile_shared_memory(64, 128, 32, 4), "m64_n128_k32_w2x2_s4"},
    {TileId::m128, 128, 128, 32, 4, 2, 4, tile_shared_memory(128, 128, 32, 4), "m128_n128_k32_w4x2_s4"},
    {TileId::m16_n32_s8, 16, 32, 64, 1, 1, 8, tile_shared_memory(16, 32, 64, 8), "m16_n32_k64_w1x1_s8"},
    {TileId::m16_n64_s8, 16, 64, 64, 1, 2, 8, tile_shared_memory(16, 64, 64, 8), "m16_n64_k64_w1x2_s8"},
};

// The M buckets: average rows per local expert (ceil(M * k / E_local)) -> tile.
struct TileBucket {
  std::int64_t max_rows_per_expert;
  TileId tile;
};
inline constexpr TileBucket kTileBuckets[] = {
    {24, TileId::m16},
    {48, TileId::m32},
    {160, TileId::m64},
    {std::numeric_limits<std::int64_t>::max(), TileId::m128},
};

inline constexpr int kLargestBlockM = 128;    // sizes the workspace for any tile
inline constexpr int kSmallestBlockM = 16;    // sizes the per-block expert ids for any tile
inline constexpr int kWeightKPadding = 64;    // converted weights' depth is padded to this (>= any block_k)
inline constexpr int kWeightNPadding = 128;   // converted w2's rows (H) are padded to this (>= any block_n)
inline constexpr int kGateUpInterleave = 16;  // converted w13: 16 gate rows, then the matching 16 up rows

const TileConfig& tile_config(TileId id);
// "m16", "m32", "m64", "m128", "m16_n32_s8", "m16_n64_s8".
const char* to_string(TileId id);
std::optional<TileId> tile_id_from_name(std::string_view name);
// The most shared memory any tile asks for (what supports() checks against the device).
std::size_t max_tile_shared_memory();

struct TileProblem {
  std::int64_t num_tokens;
  int top_k;
  std::int64_t num_local_experts;
  std::int64_t intermediate_padded;
  int num_sms;
};
// The bucket's tile, stepped down while the GEMM1 grid would not fill the GPU's SMs once.
const TileConfig& choose_tile(const TileProblem& problem);

}  // namespace fusedmoe::cuda_fused
