// The order in which the warp-specialised GEMMs take their tiles (backends/cuda_fused/kernels/raster.hpp),
// on the host: fixed groups and expert groups each visit every (row block, column block) exactly once, an
// expert group never mixes experts, and the groups' size follows the L2 and wave bounds. A mapping that
// loses or doubles a tile would leave output rows unwritten or written twice; the forward tests would see
// that only where the lost tile's rows are not padding.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "backends/cuda_fused/kernels/raster.hpp"

namespace fusedmoe {
namespace {

using cuda_fused::BlockCoordinates;
using cuda_fused::BlockRun;

// Row blocks as the align lays them out: each local expert's run of ceil(rows / block_m) blocks (empty
// experts have none), then `tail` blocks without an expert.
std::vector<BlockRun> runs_for(const std::vector<int>& blocks_per_expert, int tail) {
  std::vector<BlockRun> runs;
  for (int expert = 0; expert < static_cast<int>(blocks_per_expert.size()); ++expert) {
    const int first = static_cast<int>(runs.size()), end = first + blocks_per_expert[expert];
    for (int block = first; block < end; ++block) runs.push_back(BlockRun{first, end, expert, 0});
  }
  for (int i = 0; i < tail; ++i) {
    const int block = static_cast<int>(runs.size());
    runs.push_back(BlockRun{block, block + 1, -1, 0});
  }
  return runs;
}

// Every tile of the grid once, through expert_grouped_tile as the kernel calls it; and each group holds one
// run's blocks. pair_shift 1: tile rows are pairs of row blocks.
void check_expert_raster(const std::vector<BlockRun>& runs, std::int64_t used_blocks, std::int64_t columns,
                         int pair_shift, int group_rows) {
  const std::int64_t rows = (used_blocks + (1 << pair_shift) - 1) >> pair_shift;  // tile rows
  std::vector<int> seen(static_cast<std::size_t>(rows * columns), 0);
  for (std::int64_t tile = 0; tile < rows * columns; ++tile) {
    const BlockRun run = runs[static_cast<std::size_t>((tile / columns) << pair_shift)];
    const BlockCoordinates at =
        cuda_fused::expert_grouped_tile(tile, rows, columns, run, pair_shift, group_rows);
    const BlockCoordinates narrow =
        cuda_fused::expert_grouped_tile<int>(static_cast<int>(tile), static_cast<int>(rows),
                                             static_cast<int>(columns), run, pair_shift, group_rows);
    ASSERT_EQ(narrow.row_block, at.row_block) << "tile " << tile << " in 32 bits";
    ASSERT_EQ(narrow.column_block, at.column_block) << "tile " << tile << " in 32 bits";
    ASSERT_GE(at.row_block, 0) << "tile " << tile;
    ASSERT_LT(at.row_block, rows) << "tile " << tile;
    ASSERT_GE(at.column_block, 0) << "tile " << tile;
    ASSERT_LT(at.column_block, columns) << "tile " << tile;
    ++seen[static_cast<std::size_t>(at.row_block * columns + at.column_block)];
    // The tile's (first) block belongs to the run its group was found by: groups never straddle experts.
    const BlockRun& own = runs[static_cast<std::size_t>(std::int64_t{at.row_block} << pair_shift)];
    ASSERT_EQ(own.first, run.first) << "tile " << tile << " left its group's run";
    ASSERT_EQ(own.expert, run.expert) << "tile " << tile;
  }
  for (std::size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i], 1) << "tile (row-major) " << i;
}

TEST(CudaFusedRaster, FixedGroupsVisitEveryTileOnce) {
  for (std::int64_t rows : {1, 7, 8, 9, 17, 64, 131}) {
    for (std::int64_t columns : {1, 3, 16, 112}) {
      std::vector<int> seen(static_cast<std::size_t>(rows * columns), 0);
      for (std::int64_t tile = 0; tile < rows * columns; ++tile) {
        const BlockCoordinates at = cuda_fused::grouped_tile(tile, rows, columns);
        const BlockCoordinates narrow = cuda_fused::grouped_tile<int>(
            static_cast<int>(tile), static_cast<int>(rows), static_cast<int>(columns));
        ASSERT_EQ(narrow.row_block, at.row_block);
        ASSERT_EQ(narrow.column_block, at.column_block);
        ASSERT_TRUE(at.row_block >= 0 && at.row_block < rows && at.column_block >= 0 &&
                    at.column_block < columns)
            << rows << " x " << columns << " tile " << tile;
        ++seen[static_cast<std::size_t>(at.row_block * columns + at.column_block)];
      }
      for (int count : seen) ASSERT_EQ(count, 1) << rows << " x " << columns;
    }
  }
}

TEST(CudaFusedRaster, ExpertGroupsVisitEveryTileOnceWithinTheirExpert) {
  // Uniform routing at mixtral M=4096 (8 or 9 blocks each), deepseek M=16384 (4-5), empty experts, one
  // expert with every block, a long run split into chunks, and blocks without an expert past the used ones.
  const std::vector<std::pair<std::string, std::vector<int>>> layouts = {
      {"mixtral_m4096", {9, 8, 9, 9, 8, 8, 9, 8}},
      {"deepseek_like", {4, 5, 5, 4, 0, 5, 4, 4, 5, 0, 0, 5}},
      {"one_expert", {0, 0, 37, 0}},
      {"single_blocks", {1, 1, 1, 0, 1, 1, 1, 1, 1}},
      {"long_runs", {33, 32, 33, 1, 17}},
  };
  for (const auto& [label, blocks] : layouts) {
    for (int tail : {0, 3}) {
      const std::vector<BlockRun> runs = runs_for(blocks, tail);
      const auto used = static_cast<std::int64_t>(runs.size()) - tail;
      for (int pair_shift : {0, 1}) {
        for (std::int64_t columns : {1, 6, 16, 112}) {
          for (int group_rows : {1, 3, 4, 8, 12, 24, 64}) {
            SCOPED_TRACE(label + " tail " + std::to_string(tail) + " pairs " + std::to_string(pair_shift) +
                         " columns " + std::to_string(columns) + " group " + std::to_string(group_rows));
            // The kernels see the used blocks only, or all of them (no used_rows).
            check_expert_raster(runs, used, columns, pair_shift, group_rows);
            check_expert_raster(runs, static_cast<std::int64_t>(runs.size()), columns, pair_shift,
                                group_rows);
            if (HasFatalFailure()) return;
          }
        }
      }
    }
  }
}

TEST(CudaFusedRaster, ExpertGroupsOfRandomLayouts) {
  std::mt19937 rng(23);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<int> blocks(1 + rng() % 40);
    for (int& b : blocks) b = rng() % 4 == 0 ? 0 : static_cast<int>(1 + rng() % 20);
    const int tail = static_cast<int>(rng() % 4);
    const std::vector<BlockRun> runs = runs_for(blocks, tail);
    if (runs.empty()) continue;
    SCOPED_TRACE("trial " + std::to_string(trial));
    check_expert_raster(runs, static_cast<std::int64_t>(runs.size()), 1 + rng() % 120,
                        static_cast<int>(rng() % 2), static_cast<int>(1 + rng() % 20));
    if (HasFatalFailure()) return;
  }
}

TEST(CudaFusedRaster, AnExpertsRunIsOneGroupUpToTheGroupRows) {
  // mixtral M=4096: 9 blocks of one expert x 112 columns in one group (group_rows 24): its first 9 tiles are
  // column 0 of rows 0..8, so its weight slices are read once; with group_rows 8 it splits into 5 + 4.
  const std::vector<BlockRun> runs = runs_for({9, 9}, 0);
  for (int tile = 0; tile < 9; ++tile) {
    const BlockCoordinates at = cuda_fused::expert_grouped_tile(tile, 18, 112, runs[0], 0, 24);
    EXPECT_EQ(at.row_block, tile);
    EXPECT_EQ(at.column_block, 0);
  }
  const BlockCoordinates split = cuda_fused::expert_grouped_tile(5, 18, 112, runs[0], 0, 8);
  EXPECT_EQ(split.row_block, 0) << "the first chunk has 5 rows";
  EXPECT_EQ(split.column_block, 1);
}

TEST(CudaFusedRaster, GroupRowsFollowTheL2AndTheWaves) {
  // mixtral GEMM1 (H = 4096: 8 KiB A rows, 112 column blocks of 256): the L2 bound, 24 MiB of A rows.
  EXPECT_EQ(cuda_fused::raster_group_rows(128, 8192, 112, 132, 1), 24);
  // mixtral GEMM2 (I = 14336, 16 column blocks): two waves of 132 tiles cover 17 rows.
  EXPECT_EQ(cuda_fused::raster_group_rows(128, 28672, 16, 132, 1), 17);
  // Pairs (two CTAs a tile): half as many tile rows by the L2, waves of 66 tiles.
  EXPECT_EQ(cuda_fused::raster_group_rows(128, 8192, 112, 132, 2), 12);
  // Never below the fixed groups' kRasterRows row blocks, never above 64.
  EXPECT_EQ(cuda_fused::raster_group_rows(128, 1 << 20, 4096, 132, 1), cuda_fused::kRasterRows);
  EXPECT_EQ(cuda_fused::raster_group_rows(128, 1 << 20, 4096, 132, 2), cuda_fused::kRasterRows / 2);
  EXPECT_EQ(cuda_fused::raster_group_rows(64, 64, 1, 132, 1), 64);
}

TEST(CudaFusedRaster, PaddingWarpgroupsAreThoseOfALastBlockPastItsRoutedRows) {
  using cuda_fused::padding_warpgroups;
  // 128-row blocks (two warpgroups), a run of three blocks: only the last block has padding.
  for (const int rows : {257, 300, 320}) {
    const BlockRun run{4, 7, 5, rows};
    EXPECT_EQ(padding_warpgroups(run, 4, 2), 0);
    EXPECT_EQ(padding_warpgroups(run, 5, 2), 0);
    EXPECT_EQ(padding_warpgroups(run, 6, 2), 1) << rows << " rows: 1-64 in the last block";
  }
  EXPECT_EQ(padding_warpgroups(BlockRun{4, 7, 5, 321}, 6, 2), 0) << "65 rows in the last block";
  EXPECT_EQ(padding_warpgroups(BlockRun{4, 7, 5, 384}, 6, 2), 0) << "a full last block";
  // 192-row blocks (three warpgroups), one block.
  EXPECT_EQ(padding_warpgroups(BlockRun{0, 1, 2, 1}, 0, 3), 2);
  EXPECT_EQ(padding_warpgroups(BlockRun{0, 1, 2, 128}, 0, 3), 1);
  EXPECT_EQ(padding_warpgroups(BlockRun{0, 1, 2, 129}, 0, 3), 0);
  // A block without an expert has no warpgroups to spare: the kernels leave it idle as a whole.
  EXPECT_EQ(padding_warpgroups(BlockRun{9, 10, -1, 0}, 9, 2), 0);
  // Every routed row keeps its warpgroup, and no warpgroup of only padding rows is kept.
  for (const int warpgroups : {1, 2, 3}) {
    const int block_m = 64 * warpgroups;
    for (int rows = 1; rows <= 4 * block_m; ++rows) {
      const int blocks = (rows + block_m - 1) / block_m;
      const BlockRun run{10, 10 + blocks, 3, rows};
      const int kept = warpgroups - padding_warpgroups(run, 10 + blocks - 1, warpgroups);
      const int last_rows = rows - (blocks - 1) * block_m;
      ASSERT_GE(64 * kept, last_rows) << rows << " rows, " << warpgroups << " warpgroups";
      ASSERT_LT(64 * (kept - 1), last_rows) << rows << " rows, " << warpgroups << " warpgroups";
    }
  }
}

}  // namespace
}  // namespace fusedmoe
