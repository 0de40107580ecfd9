// The order in which the wgmma GEMMs take their (row block, column block) tiles: consecutive tiles cover all
// column blocks of a group of row blocks before the next group (Triton's GROUP_SIZE_M), so that a group's A
// rows and its experts' weight slices meet in the L2 while the group's tiles run.
//   - Fixed groups of kRasterRows row blocks (grouped_tile). A group that straddles two experts sweeps every
//     weight slice of both; where an expert's tiles span several waves (mixtral-8x7b, 112 column blocks) the
//     next group reads the straddled expert's slices from DRAM again: GEMM1 read 2.1x its weights at mixtral
//     M=4096 and deepseek-v3 M=16384 1.7x (ncu, bench/results/2026-11-28-h200-session23.md).
//   - Expert groups (expert_grouped_tile): a group is one expert's run of row blocks (from the align,
//     BlockRun), split into near-equal chunks where the run is longer than `group_rows`, so each expert's
//     weights cross the DRAM once per chunk (raster_group_rows: enough rows for ~24 MiB of A rows, two waves
//     of tiles or 8 row blocks, whichever is most; at most kRasterMaxGroupRows).
// Plain C++ (host and device), so the host tests can check that both orders visit every tile once.
#pragma once

#include <algorithm>
#include <cstdint>

#if defined(__CUDACC__)
#define FUSEDMOE_RASTER_FN __host__ __device__ __forceinline__
#else
#define FUSEDMOE_RASTER_FN inline
#endif

namespace fusedmoe::cuda_fused {

inline constexpr int kRasterRows = 8;  // the fixed groups' row blocks

struct BlockCoordinates {
  int row_block;
  int column_block;
};

// Tile `tile` (launch order) of a rows x columns grid of tiles in fixed groups of kRasterRows rows. Index:
// std::int64_t, or int where rows * columns and kRasterRows * columns fit (a kernel's divisions are then
// much cheaper; the kernels' column blocks are a few thousand at most).
template <class Index = std::int64_t>
FUSEDMOE_RASTER_FN BlockCoordinates grouped_tile(Index tile, Index rows, Index columns) {
  const Index per_group = kRasterRows * columns;
  const Index group = tile / per_group, within = tile % per_group;
  const Index first_row = group * kRasterRows;
  const Index group_rows = rows - first_row < kRasterRows ? rows - first_row : Index{kRasterRows};
  return BlockCoordinates{static_cast<int>(first_row + within % group_rows),
                          static_cast<int>(within / group_rows)};
}

// A row block's run, written by the align next to block_expert: the row blocks [first, end) of its expert,
// the expert, and its routed rows (the run's last block holds rows - (end - first - 1) * block_m of them,
// the rest is padding); a block without an expert (-1) is a run of its own with rows 0. 16 bytes: one load.
struct alignas(16) BlockRun {
  std::int32_t first;
  std::int32_t end;
  std::int32_t expert;
  std::int32_t rows;
};

// How many of row block `row_block`'s last 64-row warpgroups (of `warpgroups`, block_m = 64 x warpgroups)
// hold only padding rows: none but in its run's last block, where rows past the routed ones are padding.
FUSEDMOE_RASTER_FN int padding_warpgroups(const BlockRun& run, std::int64_t row_block, int warpgroups) {
  if (run.expert < 0 || row_block != run.end - 1) return 0;
  const std::int64_t routed = run.rows - std::int64_t{run.end - 1 - run.first} * 64 * warpgroups;
  return routed <= 0 ? warpgroups : warpgroups - static_cast<int>((routed + 63) / 64);
}

// The expert raster of a launch: block_runs [row blocks] (nullptr: fixed groups) and the most tile rows of
// a group (0: the launcher sets raster_group_rows's).
struct Raster {
  const BlockRun* block_runs = nullptr;
  int group_rows = 0;
};

// Tile `tile` of a rows x columns grid in expert groups. Tile rows are row blocks, or pairs of them
// (pair_shift 1: tile row p is row blocks 2p and 2p + 1, grouped by the run of block 2p). `run` is the run of
// row block (tile / columns) << pair_shift: the row the tile would have row-major, which lies in the tile's
// group (a group of g rows owns the g * columns consecutive tiles from its first row * columns on).
template <class Index = std::int64_t>
FUSEDMOE_RASTER_FN BlockCoordinates expert_grouped_tile(Index tile, Index rows, Index columns, BlockRun run,
                                                        int pair_shift, int group_rows) {
  const Index row = tile / columns;
  const Index unit = Index{1} << pair_shift;
  Index first = (run.first + unit - 1) >> pair_shift;  // the first tile row whose first block is in it
  Index end = (run.end + unit - 1) >> pair_shift;
  if (end > rows) end = rows;
  if (!(first <= row && row < end)) {  // not the run of this row (never from the align): a group of its own
    first = row;
    end = row + 1;
  }
  // Near-equal chunks of at most group_rows: the first `longer` chunks have one row more.
  const Index length = end - first, most = group_rows > 0 ? group_rows : 1;
  const Index chunks = (length + most - 1) / most;
  const Index size = length / chunks, longer = length % chunks;
  const Index index = row - first, in_longer = longer * (size + 1);
  Index chunk_first, chunk_rows;
  if (index < in_longer) {
    chunk_first = first + index / (size + 1) * (size + 1);
    chunk_rows = size + 1;
  } else {
    chunk_first = first + in_longer + (index - in_longer) / size * size;
    chunk_rows = size;
  }
  const Index within = tile - chunk_first * columns;
  return BlockCoordinates{static_cast<int>(chunk_first + within % chunk_rows),
                          static_cast<int>(within / chunk_rows)};
}

// The L2 a group's A rows may fill while its tiles sweep the column blocks (the weight slices in flight and
// the other operand take the rest of the H100's and H200's 50 MiB).
inline constexpr std::int64_t kRasterABytes = std::int64_t{24} << 20;

// Most tile rows of an expert group, the most of: the rows whose A rows (block_m rows of a_row_bytes per row
// block) fill kRasterABytes; the rows two waves of tiles cover (their tiles run at once, so the A rows are
// reused at once even beyond the L2 bound); the fixed groups' kRasterRows row blocks. At most
// kRasterMaxGroupRows. tile_ctas: CTAs per tile (2 for pairs).
inline constexpr int kRasterMaxGroupRows = 64;
inline int raster_group_rows(std::int64_t block_m, std::int64_t a_row_bytes, std::int64_t columns,
                             int num_sms, int tile_ctas) {
  const std::int64_t by_l2 = kRasterABytes / std::max<std::int64_t>(1, block_m * a_row_bytes * tile_ctas);
  const std::int64_t tiles_per_wave = std::max(1, num_sms / std::max(1, tile_ctas));
  const std::int64_t by_waves = (2 * tiles_per_wave + columns - 1) / std::max<std::int64_t>(1, columns);
  const std::int64_t fixed = kRasterRows / std::max(1, tile_ctas);
  return static_cast<int>(
      std::clamp<std::int64_t>(std::max({by_l2, by_waves, fixed}), 1, kRasterMaxGroupRows));
}

}  // namespace fusedmoe::cuda_fused
