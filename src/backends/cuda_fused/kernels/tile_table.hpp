// Tile configurations of cuda_fused's grouped GEMMs (mma.sync on sm_80+, wgmma on sm_90a), and the table that
// picks one per M bucket. Compiled in; `FUSEDMOE_LOG_LEVEL=kernels` logs the entry each problem key uses.
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
// run only when forced or picked by a `fusedmoe tune` table. The wg* tiles are Hopper's (wgmma, one to three
// warpgroups of 64 rows; sm90_wgmma_grouped_gemm.cuh, sm90_wgmma_warp_specialized.cuh): offered only on
// compute capability 9.0 in a build with sm_90a (wgmma_tiles_available), where the heuristic takes them from
// 14 rows per expert.
enum class TileId {
  m16,
  m32,
  m64,
  m128,
  m16_n32_s8,
  m16_n64_s8,
  m16_n64_k128,
  m16_n128_k128,
  wg64_n128,
  wg64_n256,
  wg128_n128,
  wg128_n256,
  wg64_n256_ws,
  wg128_n256_ws,
  wg64_n128_ws,
  wg128_n256_ws_pair,
  wg192_n192_ws
};

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
  std::size_t shared_memory_bytes;  // mma.sync: (block_m + block_n) * block_k * 2 bytes * stages
  const char* name;
  bool wgmma = false;  // Hopper warpgroup MMA (needs sm_90a); warps_m counts warps (4 per warpgroup)
  // More shared memory per block than every sm_80+ GPU offers (sm_86/89 opt in to 99 KiB): offered only where
  // the device's opt-in limit holds it (tile_available).
  bool large_shared = false;
  // wgmma, persistent, warp-specialised: a producer warpgroup loads (weights by TMA) while one or two
  // consumer warpgroups multiply (sm90_wgmma_warp_specialized.cuh); warps_m counts the producer's warps too.
  bool warp_specialized = false;
  // Warp-specialised blocks launched as clusters of this many (2: a "pair" of row blocks of one column block
  // that multicast the expert's weight tile to each other where both rows are one expert's).
  int cluster_m = 1;
};

// mma.sync tiles: unpadded rows with an XOR swizzle (sm80_bf16_grouped_gemm.cuh).
inline constexpr std::size_t tile_shared_memory(int block_m, int block_n, int block_k, int stages) {
  return static_cast<std::size_t>(block_m + block_n) * static_cast<std::size_t>(block_k) * 2 *
         static_cast<std::size_t>(stages);
}

// wgmma tiles: 128-byte swizzled rows, no padding, + 1 KiB to align the tiles to 1024 bytes.
inline constexpr std::size_t wgmma_tile_shared_memory(int block_m, int block_n, int stages) {
  return static_cast<std::size_t>(block_m + block_n) * 128 * static_cast<std::size_t>(stages) + 1024;
}

// Warp-specialised wgmma tiles: the same + GEMM1's activation tile on its way out by TMA (block_m x
// block_n / 2 bf16), per stage two mbarriers and a tile index, and the words that hand a taken tile over
// (single CTAs: two; pairs: 2 x stages, each with an mbarrier).
// The epilogue's staging: 16 rows per consumer warp (block_m x block_n bytes), or 8 (half of it).
inline constexpr std::size_t warp_specialized_shared_memory(int block_m, int block_n, int stages,
                                                            int cluster_m = 1, int staging_rows = 16) {
  const int take_words = cluster_m == 2 ? 2 * 2 * stages : 2;
  return wgmma_tile_shared_memory(block_m, block_n, stages) +
         static_cast<std::size_t>(block_m * block_n * staging_rows / 16) +
         (static_cast<std::size_t>(3 * 8 * stages + 8 * take_words) + 127) / 128 * 128;
}

inline constexpr TileConfig kTileConfigs[] = {
    {TileId::m16, 16, 64, 64, 1, 2, 4, tile_shared_memory(16, 64, 64, 4), "m16_n64_k64_w1x2_s4"},
    {TileId::m32, 32, 64, 64, 2, 2, 3, tile_shared_memory(32, 64, 64, 3), "m32_n64_k64_w2x2_s3"},
    {TileId::m64, 64, 128, 32, 2, 2, 4, tile_shared_memory(64, 128, 32, 4), "m64_n128_k32_w2x2_s4"},
    {TileId::m128, 128, 128, 32, 4, 2, 4, tile_shared_memory(128, 128, 32, 4), "m128_n128_k32_w4x2_s4"},
    {TileId::m16_n32_s8, 16, 32, 64, 1, 1, 8, tile_shared_memory(16, 32, 64, 8), "m16_n32_k64_w1x1_s8"},
    {TileId::m16_n64_s8, 16, 64, 64, 1, 2, 8, tile_shared_memory(16, 64, 64, 8), "m16_n64_k64_w1x2_s8"},
    // Streaming tiles for a few rows per expert on big-shared-memory GPUs (A100, H100): two blocks per SM
    // with ~128 KiB of weight stages in flight, the k128 ones in 256-byte row segments.
    {TileId::m16_n64_k128, 16, 64, 128, 1, 2, 5, tile_shared_memory(16, 64, 128, 5), "m16_n64_k128_w1x2_s5",
     false, true},
    {TileId::m16_n128_k128, 16, 128, 128, 1, 4, 3, tile_shared_memory(16, 128, 128, 3),
     "m16_n128_k128_w1x4_s3", false, true},
    {TileId::wg64_n128, 64, 128, 64, 4, 1, 4, wgmma_tile_shared_memory(64, 128, 4), "wgmma_m64_n128_k64_s4",
     true},
    {TileId::wg64_n256, 64, 256, 64, 4, 1, 4, wgmma_tile_shared_memory(64, 256, 4), "wgmma_m64_n256_k64_s4",
     true},
    {TileId::wg128_n128, 128, 128, 64, 8, 1, 3, wgmma_tile_shared_memory(128, 128, 3),
     "wgmma_m128_n128_k64_s3", true},
    {TileId::wg128_n256, 128, 256, 64, 8, 1, 4, wgmma_tile_shared_memory(128, 256, 4),
     "wgmma_m128_n256_k64_s4", true},
    {TileId::wg64_n256_ws, 64, 256, 64, 8, 1, 5, warp_specialized_shared_memory(64, 256, 5),
     "wgmma_m64_n256_k64_s5_warp_specialized", true, false, true},
    {TileId::wg128_n256_ws, 128, 256, 64, 12, 1, 4, warp_specialized_shared_memory(128, 256, 4),
     "wgmma_m128_n256_k64_s4_warp_specialized", true, false, true},
    // Half the columns and twice the stages: twice the tiles (a finer tail) for a few rows per expert.
    {TileId::wg64_n128_ws, 64, 128, 64, 8, 1, 8, warp_specialized_shared_memory(64, 128, 8),
     "wgmma_m64_n128_k64_s8_warp_specialized", true, false, true},
    // wg128_n256_ws in clusters of two CTAs on consecutive row blocks: an expert's weight tile crosses the
    // L2 once for both (the prefill GEMMs were bound by L2 throughput, 72-80% in ncu).
    {TileId::wg128_n256_ws_pair, 128, 256, 64, 12, 1, 4, warp_specialized_shared_memory(128, 256, 4, 2),
     "wgmma_m128_n256_k64_s4_warp_specialized_pair", true, false, true, 2},
    // Three consumer warpgroups on 192 rows x 192 columns (8 staged epilogue rows per warp, for 4 stages):
    // one row block for experts of 129-192 rows, where 128-row tiles need two, the second mostly padding. A
    // tile costs about what it loads into shared memory, padding rows' weights included (bench/results/
    // 2026-11-28-h200-session21.md).
    {TileId::wg192_n192_ws, 192, 192, 64, 16, 1, 4, warp_specialized_shared_memory(192, 192, 4, 1, 8),
     "wgmma_m192_n192_k64_s4_warp_specialized", true, false, true},
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

// The heuristic, for shapes without a tune-table entry, by average rows per local expert:
//   <= 13 (<= 16 without the wgmma tiles): the streaming tiles (m16_n128_k128, else m16_n64_k128), where the
//          device's shared memory holds them (H100, session 5: 3-10% faster than m16 and 6-14% faster than
//          wg64_n128 at <= 16 rows then). Since then the wgmma tiles overtook them at 16 rows on the H200 on
//          all four bench presets (6-18%), and the H100 tables chose a wgmma tile at 16 rows on all four too.
//          On the H200 (session 32, heuristic against heuristic): at 13 rows the streaming tiles are 1.6-7.9%
//          faster on three presets (4% slower on deepseek-v3); at 14 rows wgmma is 5-7% faster on mixtral and
//          deepseek (0.6-1.9% slower on qwen3, olmoe); at 15 faster on all four. Uniform routing pushes
//          more experts past 16 rows (a second streaming block) as the mean grows
//          (bench/results/2026-11-29-h200-session32.md).
//   14-56: the warp-specialised wg64_n256_ws (one consumer warpgroup). Within 0-6% of the best tile at
//          13-48 rows on the H200 (wg64_n128 or m32 are 0-6% ahead on some shapes, no one tile wins on all
//          four presets), and up to 4.5% faster than the two-group tile at 40-56 rows on qwen3-30b-a3b.
//   57-120: wg128_n256_ws (two consumers): at 64 rows the one-group tile was 8-17% slower on every preset
//          (uniform routing puts about half the experts past 64 rows: a second, mostly empty block).
//   121-176: wg192_n192_ws (three consumers: one block for experts of up to 192 rows); beyond: wg128_n256_ws.
//   Without wgmma: the mma.sync buckets below (kTileBuckets). The built-in tune tables
//   (builtin_tune_tables.cpp) hold the measured choice for the presets' shapes on the H100 and H200.
inline constexpr std::int64_t kStreamingMaxRowsPerExpert = 16;  // one 16-row block per expert (tune's pairs)
inline constexpr std::int64_t kWgmmaMinRowsPerExpert = 14;
// The heuristic's wgmma regimes by rows per expert (choose_tile): one consumer warpgroup (64 rows) up to 56,
// two (128 rows) up to 120, three (192 rows) up to 176, two beyond. `fusedmoe tune` ends a bucket at the
// last M of each regime too (tune_token_counts), so that no bucket spans two of them, and where the streaming
// tiles end: 13 rows with wgmma, 16 without.
inline constexpr std::int64_t kOneGroupMaxRowsPerExpert = 56;
inline constexpr std::int64_t kThreeGroupsMinRowsPerExpert = 121, kThreeGroupsMaxRowsPerExpert = 176;
inline constexpr std::int64_t kRegimeLastRowsPerExpert[] = {
    kWgmmaMinRowsPerExpert - 1, kStreamingMaxRowsPerExpert, kOneGroupMaxRowsPerExpert,
    kThreeGroupsMinRowsPerExpert - 1, kThreeGroupsMaxRowsPerExpert};

inline constexpr int kLargestBlockM = 192;  // sizes the workspace for any tile
inline constexpr int kSmallestBlockM = 16;  // sizes the per-block expert ids for any tile
inline constexpr int kWeightKPadding = 64;  // converted weights' depth is padded to this (>= any block_k)
inline constexpr int kWeightNPadding =
    128;  // converted w2's rows (H): >= any mma.sync block_n (wgmma bounds B)
inline constexpr int kGateUpInterleave = 16;  // converted w13: 16 gate rows, then the matching 16 up rows

const TileConfig& tile_config(TileId id);
// "m16", "m32", "m64", "m128", "m16_n32_s8", "m16_n64_s8", "wg64_n128", ...
const char* to_string(TileId id);
std::optional<TileId> tile_id_from_name(std::string_view name);
// Every tile name, comma separated (for error messages).
std::string tile_names();
// The most shared memory any mma.sync tile asks for (what supports() checks against the device; the wgmma
// and large_shared tiles are extras offered only where they fit: tile_available).
std::size_t max_tile_shared_memory();

// Whether this build has the wgmma kernels (sm_90a among its CUDA architectures) and a device of compute
// capability `compute_capability` with `shared_memory_optin` bytes per block can run every wgmma tile.
bool wgmma_tiles_available(int compute_capability, std::size_t shared_memory_optin);

// Whether `tile` can run on a device of this compute capability and opt-in shared memory per block.
bool tile_available(const TileConfig& tile, int compute_capability, std::size_t shared_memory_optin);

struct TileProblem {
  std::int64_t num_tokens;
  int top_k;
  std::int64_t num_local_experts;
  std::int64_t intermediate_padded;
  int num_sms;
  bool wgmma = false;                   // the wgmma tiles may be chosen (wgmma_tiles_available)
  std::size_t shared_memory_optin = 0;  // the large_shared tiles may be chosen where they fit
};
// The bucket's tile, stepped down while the GEMM1 grid would not fill the GPU's SMs once.
const TileConfig& choose_tile(const TileProblem& problem);

}  // namespace fusedmoe::cuda_fused
