// Warp-specialised, persistent variants of the wgmma GEMMs (sm_90a): one block per SM takes tiles of the
// grouped raster (raster.hpp: expert groups, or fixed groups of row blocks) one after another from a device
// counter (so tiles start in raster order as blocks free up, like the hardware's dispatch of one-tile blocks:
// the tiles that share A rows or a weight slice run at the same time and meet in the L2; a static
// round-robin drifted apart and read deepseek-v3's weights 1.5x over). A producer warpgroup and one to three
// consumer warpgroups:
//   - the producer (few registers) fills a ring of kStages shared-memory stages: the weight tile by TMA (one
//     thread; kBlockN rows x 64 columns in the 128-byte swizzle, rows past the expert's end read as zeros),
//     the A rows by cp.async (GEMM1's are gathered by sorted id, so they are not a TMA box; every producer
//     thread copies kChunksA chunks of 16 bytes) or, for GEMM2 (its A rows are the intermediate in sorted
//     order), as one TMA box with the weights. Each producer thread's copies into a stage arrive on its
//     full barrier as they land (cp.async.mbarrier.arrive.noinc; the consumers fence them for the async
//     proxy before their wgmma), so the full barrier counts 128 producer arrivals + the TMA thread's
//     expect_tx. With Gemm1Launch::async_signal off, a thread instead waits for its copies kSignalLag
//     stages after issuing them (and all of a tile's at its end), fences them and arrives itself; with
//     TMA rows it arrives at once.
//     The first stage of a tile carries the tile's index for the consumers; a stage carrying -1 ends the
//     block;
//   - each consumer (64 rows, kBlockN / 2 fp32 accumulators per thread) waits for a full stage, issues
//     wgmma.m64nNk16 x 4 over it (N = kBlockN), and gives the stage back once that wgmma group retired. After
//     a tile's last k-tile the consumers write the epilogue while the producer already loads the next tile's
//     stages. The consumer warps stage their 16 rows of the output in shared memory (all at once, or 8 at a
//     time where the stages leave less room: kStagingRows) and write them by TMA store, which overlaps the
//     next tile's main loop: GEMM1's activation (gemm1_epilogue_tma; 1-2% of the forward at M >= 1024) and
//     GEMM2's weighted rows in sorted order (gemm2_epilogue_tma; 1-2% at M >= 4096; the reduce gathers them
//     by pair position), bench/results/2026-11-28-h100-session14.md.
// GEMM1 -> GEMM2 hand-over per row block (RowBlockSync): GEMM1 lets GEMM2 launch at once and counts each
// finished tile per row block (once the tile's TMA stores are complete); GEMM2 does not wait for GEMM1 as a
// whole but takes a row block's tiles once all of that row block's GEMM1 tiles are written. GEMM2's blocks
// take the SMs GEMM1's blocks leave in its tail, instead of the SMs idling until GEMM1's last tile is done.
// Same operands, epilogues and k16 order as the other wgmma kernels, so the same bits.
#pragma once

#include <cstdint>

#include "backends/cuda_fused/kernels/sm90_async_ops.cuh"
#include "backends/cuda_fused/kernels/sm90_wgmma_grouped_gemm.cuh"

namespace fusedmoe::cuda_fused {

// The hand-over (see above): `done` [row blocks], zeroed by the align (AlignLaunch::zero_words);
// GEMM1 adds one per consumer warp and tile, GEMM2 waits for `target` (GEMM1's column blocks x its consumer
// warps). done == nullptr: GEMM2 waits for the whole of GEMM1 (grid_dependency.cuh).
struct RowBlockSync {
  unsigned* done = nullptr;
  unsigned target = 0;
};

template <int Consumers, int Stages, int BlockN = 256, int ClusterM = 1, int StagingRows = 16>
struct WarpSpecializedShape {
  static constexpr int kConsumers = Consumers;  // warpgroups of 64 rows
  static constexpr int kBlockM = 64 * kConsumers, kBlockN = BlockN, kBlockK = 64, kStages = Stages;
  // CTAs per cluster, each on its own row block of one column block (a "pair": ClusterM = 2).
  static constexpr int kClusterM = ClusterM;
  static constexpr bool kPair = kClusterM == 2;
  using Single = WarpSpecializedShape<Consumers, Stages, BlockN, 1, StagingRows>;  // without clusters
  static constexpr int kThreads = 128 * (1 + kConsumers);
  static constexpr int kRowBytes = 128;
  static constexpr int kStageABytes = kBlockM * kRowBytes, kStageBBytes = kBlockN * kRowBytes;
  static constexpr int kStageBytes = kStageABytes + kStageBBytes;
  // Weight rows per TMA box: a pair's CTAs each load half of the tile's and multicast it to both.
  static constexpr int kBoxRows = kBlockN / kClusterM;
  // Slots for the taken tile's index: two alternate within a CTA; a pair's leader writes its partner's slots
  // up to kStages takes ahead (it cannot run further ahead than the ring), each with an mbarrier to say so.
  static constexpr int kTakeSlots = kPair ? 2 * kStages : 2;
  // Per stage a full and an empty mbarrier and the tile index it starts; the take slots (+ their barriers).
  static constexpr int kControlBytes = (3 * 8 * kStages + 8 * kTakeSlots * (kPair ? 2 : 1) + 127) / 128 * 128;
  // The epilogue's rows on their way out by TMA stores: kStagingRows rows per consumer warp at a time (its 16
  // rows at once, or in two halves of 8 where the stages leave too little shared memory), in boxes of
  // kEpilogueBoxColumns columns: 64 (128-byte rows, 128-byte swizzle) where they divide the tile's output
  // columns, else 32 (64-byte rows, 64-byte swizzle: a 192-column tile writes 96). GEMM1's activation
  // (kBlockN / 2 columns) fits at once; GEMM2's weighted rows (kBlockN columns) go in two passes.
  static constexpr int kStagingRows = StagingRows;
  static constexpr int kEpilogueBoxColumns = (kBlockN / 2) % 64 == 0 ? 64 : 32;
  static constexpr int kEpilogueBoxBytes = kStagingRows * kEpilogueBoxColumns * 2;
  static constexpr int kWarpStagingBytes = kStagingRows * kBlockN;
  static constexpr int kStagingBytes = 4 * kConsumers * kWarpStagingBytes;
  static constexpr int kSharedBytes =
      kStages * kStageBytes + kStagingBytes + kControlBytes + 1024;  // + alignment slack
  static constexpr int kChunksA = kBlockM * 8 / 128;  // 16-byte A chunks per producer thread and stage
  static constexpr int kAccumulators = kBlockN / 2;   // fp32 per consumer thread: 64 x N over 128 threads
  static constexpr int kSignalLag = kStages >= 4 ? 2 : 1;  // stages a producer thread's cp.async run ahead
  // Two or three consumers need more than the registers their threads get evenly: the producers give theirs
  // back (128 x 56 + 256 x 224 or 384 x 152 <= 64 Ki). One consumer (256 threads) has enough without it.
  static constexpr bool kReallocateRegisters = kConsumers >= 2;
  static constexpr int kProducerRegisters = 56, kConsumerRegisters = kConsumers == 3 ? 152 : 224;
  static_assert(kConsumers >= 1 && kConsumers <= 3, "one to three consumer warpgroups");
  static_assert(kBlockN == 128 || kBlockN == 192 || kBlockN == 256,
                "wgmma.m64n128k16, m64n192k16 or m64n256k16; a TMA box holds at most 256 rows");
  static_assert(kClusterM == 1 || kClusterM == 2, "single CTAs or pairs");
  static_assert(kStagingRows == 8 || kStagingRows == 16,
                "a consumer warp stages its 16 rows at once or by 8");
  static_assert(kSharedBytes <= 227 * 1024, "more shared memory than an sm_90 block may opt in to");
  // A consumer holds two stages (the k-tile in flight and the one before it until wgmma_wait<1>), and a
  // producer thread signals a stage kSignalLag issues later: fewer stages would deadlock.
  static_assert(kSignalLag + 2 <= kStages, "the ring must outlast the consumers' hold and the signal lag");
};

// Byte offset in a consumer warp's staging of output column `column` (even; of the columns staged at once)
// in staged row `row`: box column / kEpilogueBoxColumns, its 16-byte chunk moved by the box's swizzle (the
// 128-byte swizzle: chunk c of row r at c ^ (r % 8); the 64-byte one: c ^ (r / 2 % 4)), so that a store
// instruction's 8 rows x 4 lanes hit 32 different banks.
template <class Shape>
__host__ __device__ constexpr unsigned staging_offset(int row, int column) {
  constexpr int kBoxColumns = Shape::kEpilogueBoxColumns, kBoxRowBytes = 2 * kBoxColumns;
  const int box = column / kBoxColumns, chunk = column % kBoxColumns / 8;
  const int moved = kBoxColumns == 64 ? chunk ^ (row & 7) : chunk ^ ((row >> 1) & 3);
  return static_cast<unsigned>(box * Shape::kEpilogueBoxBytes + row * kBoxRowBytes + (moved << 4) +
                               2 * (column % 8));
}

// Compile-time checks of a shape's staging (static_assert'ed for every instantiated shape): each warp's
// staging starts on a swizzle period of its boxes (1024 bytes for the 128-byte swizzle, 512 for the 64-byte
// one) from the 1024-aligned stages' end; staging_offset is the TMA's swizzle of the box's plain row-major
// address (16-byte chunk c of the 128-byte line l moves to c ^ (l % 8) or, 64-byte, c ^ (l % 4) within its
// line pair), covers the warp's staging exactly once, and a store instruction's 8 rows x 4 lanes hit 32
// different banks.
template <class Shape>
constexpr bool staging_layout_ok() {
  constexpr int kBoxColumns = Shape::kEpilogueBoxColumns, kBoxRowBytes = 2 * kBoxColumns;
  constexpr int kPeriod = kBoxColumns == 64 ? 1024 : 512;
  if ((Shape::kStages * Shape::kStageBytes) % 1024 != 0 || Shape::kWarpStagingBytes % kPeriod != 0 ||
      Shape::kEpilogueBoxBytes % kPeriod != 0) {
    return false;
  }
  constexpr int kColumns = Shape::kBlockN / 2, kWords = Shape::kWarpStagingBytes / 4;
  bool seen[kWords] = {};
  for (int row = 0; row < Shape::kStagingRows; ++row) {
    for (int column = 0; column < kColumns; column += 2) {
      const int box = column / kBoxColumns, chunk = column % kBoxColumns / 8;
      const int plain = box * Shape::kEpilogueBoxBytes + row * kBoxRowBytes + chunk * 16;
      const int line = plain / 128, moved = kBoxColumns == 64 ? chunk ^ (line % 8) : chunk ^ (line % 4);
      const int swizzled = plain - chunk * 16 + moved * 16 + 2 * (column % 8);
      const unsigned offset = staging_offset<Shape>(row, column);
      if (offset != static_cast<unsigned>(swizzled) || offset % 4 != 0 || offset / 4 >= kWords ||
          seen[offset / 4]) {
        return false;
      }
      seen[offset / 4] = true;
    }
  }
  for (int word = 0; word < kWords; ++word) {
    if (!seen[word]) return false;
  }
  // A store instruction: lane l writes row l / 4 (of 8), columns 2 (l % 4) + 8 g of one 8-column group g.
  for (int group = 0; group < kColumns / 8; ++group) {
    unsigned banks = 0;
    for (int lane = 0; lane < 32; ++lane) {
      banks |=
          1u << (staging_offset<Shape>(lane / 4 % Shape::kStagingRows, 8 * group + 2 * (lane % 4)) / 4 % 32);
    }
    if (banks != 0xffffffffu) return false;
  }
  return true;
}

// What the consumers learn from a tile's first stage: the row-major tile index (row block x columns +
// column block) with, from bit kIdleConsumersShift, how many of the last consumer warpgroups have only
// padding rows (the last row block of an expert's run: they skip the MMAs, their accumulators stay zero, as
// the padding rows' products would be); kIdleTile (a pair's CTA whose row block has no expert: it keeps the
// pace, computes nothing); or kEndTile.
inline constexpr long long kIdleTile = -2, kEndTile = -1;
inline constexpr int kIdleConsumersShift = 56;
inline constexpr long long kTileIndexMask = (1ll << kIdleConsumersShift) - 1;

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)

// One 16-byte load of a row block's run (raster.hpp).
__device__ __forceinline__ BlockRun load_block_run(const BlockRun* run) {
  const int4 words = *reinterpret_cast<const int4*>(run);
  return BlockRun{words.x, words.y, words.z, words.w};
}

// a_row(row) -> the sorted row's A source (row start, nullptr = a padding row: zeros), gathered by cp.async;
// or, with `a_rows` (GEMM2: its A rows are the intermediate in sorted order), the tile's A rows as one TMA
// box of that map, read as they are (their padding rows must hold zeros: stale values change no result but
// the power drawn, bench/results/2026-11-27-h100-session9.md). epilogue(BlockCoordinates, acc, consumer
// thread). `next_tile` counts the tiles handed out: zero before the launch (written before the kernel that
// precedes this one, which this kernel waits for before reading it). `used_rows` (nullptr: all `row_blocks`)
// bounds the row blocks handed out, so no block spends its tail taking tiles of the unused worst-case blocks
// one atomic at a time. Waits for the previous kernel before reading anything, except with `await_rows`
// (GEMM2 of a RowBlockSync): then block_expert, used_rows and next_tile come from kernels before the previous
// one (complete once it let this grid launch), and a row block's A rows are read once await_rows[row block]
// reaches `await_target`. `signal_rows` (GEMM1 of a RowBlockSync): lets the next grid launch at once and
// counts each consumer warp's finished tile there. `raster`: the order of the tiles (raster.hpp; its block
// runs come from the align, as block_expert does).
//
// Pairs (Shape::kPair, launched as clusters of two CTAs): a tile is a pair of row blocks (2p, 2p + 1) x one
// column block; CTA r computes row block 2p + r. The leader (rank 0) takes the tiles and writes each into its
// partner's take slot. Where both row blocks belong to one expert, each CTA loads half the weight box and
// multicasts it to both (the weights cross the L2 once for both); otherwise each loads its own. Both CTAs
// walk the same stages in step: every consumer warp gives a stage back to both CTAs' empty barriers, so no
// CTA writes into a stage its partner still reads. The caller synchronises the cluster before exiting.
//
// AsyncStores (GEMM1, and GEMM2 for its sorted rows): the epilogue may write its rows with TMA stores that
// one lane per consumer warp issues and commits. That lane waits for them only after its next tile's main
// loop (or before exiting), and only then counts the tile's rows in `signal_rows`: the stores overlap the
// next tile's MMAs.
template <class Shape, bool AsyncStores, class ARow, class Epilogue>
__device__ __forceinline__ void wgmma_warp_specialized(
    const std::int32_t* block_expert, unsigned long long* next_tile, const std::int64_t* used_rows,
    std::int64_t row_blocks, std::int64_t columns, std::int64_t a_columns, int k_tiles,
    const CUtensorMap* weights, const CUtensorMap* a_rows, const void* placeholder, unsigned shared,
    unsigned* signal_rows, const unsigned* await_rows, unsigned await_target, ARow a_row, Epilogue epilogue,
    bool async_signal, Raster raster) {
  // The A rows by cp.async, signalled as they land (Gemm1Launch::async_signal).
  const bool copies_signal = a_rows == nullptr && async_signal;
  constexpr bool kPair = Shape::kPair;
  const unsigned control = shared + Shape::kStages * Shape::kStageBytes + Shape::kStagingBytes;
  auto full_barrier = [&](int stage) { return control + 8u * static_cast<unsigned>(stage); };
  auto empty_barrier = [&](int stage) {
    return control + 8u * static_cast<unsigned>(Shape::kStages + stage);
  };
  auto stage_tile = [&](int stage) {
    return control + 8u * static_cast<unsigned>(2 * Shape::kStages + stage);
  };
  auto take_slot = [&](int slot) { return control + 8u * static_cast<unsigned>(3 * Shape::kStages + slot); };
  auto take_barrier = [&](int slot) {
    return control + 8u * static_cast<unsigned>(3 * Shape::kStages + Shape::kTakeSlots + slot);
  };
  const unsigned rank = kPair ? cluster_rank() : 0u, partner = rank ^ 1u;
  if constexpr (kPair) {
    if (cluster_size() != Shape::kClusterM) __trap();  // launched without its clusters: no partner to talk to
  }
  if (threadIdx.x == 0) {
    tma_prefetch_descriptor(weights);
    if (a_rows != nullptr) tma_prefetch_descriptor(a_rows);
    for (int stage = 0; stage < Shape::kStages; ++stage) {
      mbarrier_init(full_barrier(stage), 128 + 1);  // the producers' arrivals + the TMA thread's expect_tx
      // Single CTAs: every consumer thread; pairs: one arrival per consumer warp of either CTA.
      mbarrier_init(empty_barrier(stage), kPair ? 2 * 4 * Shape::kConsumers : 128 * Shape::kConsumers);
    }
    if constexpr (kPair) {
      for (int slot = 0; slot < Shape::kTakeSlots; ++slot) mbarrier_init(take_barrier(slot), 1);
    }
    mbarrier_init_fence();
  }
  if constexpr (kPair) {
    cluster_sync();  // the partner's barriers exist before anything arrives on them
  } else {
    __syncthreads();
  }
  if (await_rows == nullptr) cuda::wait_for_prior_grids();
  if (signal_rows != nullptr) cuda::allow_dependent_grids();
  const std::int64_t used_blocks =
      used_rows == nullptr ? row_blocks : (*used_rows + Shape::kBlockM - 1) / Shape::kBlockM;
  const std::int64_t rows = used_blocks < row_blocks ? used_blocks : row_blocks;
  const std::int64_t tile_rows = kPair ? (rows + 1) / 2 : rows;  // row blocks or pairs of them
  const std::int64_t tiles = tile_rows * columns;
  // The expert of row block r (-1: none, or past the used ones).
  auto expert_of = [&](std::int64_t row_block) { return row_block < rows ? block_expert[row_block] : -1; };
  // Tile `tile`'s row block (or pair) and column block in the raster (raster.hpp); `expert`: with the expert
  // raster, the expert of its row block (of a pair's first), else unknown (-1); `padding`: with the expert
  // raster, how many of the last warpgroups of its row block (a pair's first) have padding rows only
  // (padding_warpgroups), else 0.
  // (In 32 bits where the tiles fit: the taking thread's divisions are on the way to each tile's first
  // loads.)
  const bool narrow = tiles <= 0x7fffffff;
  auto raster_tile = [&](std::int64_t tile, int& expert, int& padding) -> BlockCoordinates {
    expert = -1;
    padding = 0;
    if (raster.block_runs == nullptr) {
      return narrow ? grouped_tile<int>(static_cast<int>(tile), static_cast<int>(tile_rows),
                                        static_cast<int>(columns))
                    : grouped_tile(tile, tile_rows, columns);
    }
    const std::int64_t row = narrow ? static_cast<int>(tile) / static_cast<int>(columns) : tile / columns;
    const BlockRun run = load_block_run(raster.block_runs + (row << (kPair ? 1 : 0)));
    const BlockCoordinates at =
        narrow ? expert_grouped_tile<int>(static_cast<int>(tile), static_cast<int>(tile_rows),
                                          static_cast<int>(columns), run, kPair ? 1 : 0, raster.group_rows)
               : expert_grouped_tile(tile, tile_rows, columns, run, kPair ? 1 : 0, raster.group_rows);
    if ((static_cast<std::int64_t>(at.row_block) << (kPair ? 1 : 0)) >= run.first &&
        (static_cast<std::int64_t>(at.row_block) << (kPair ? 1 : 0)) < run.end) {
      expert = run.expert;
      padding = padding_warpgroups(run, static_cast<std::int64_t>(at.row_block) << (kPair ? 1 : 0),
                                   Shape::kConsumers);
    }
    return at;
  };

  if (threadIdx.x < 128) {  // the producer warpgroup
    if constexpr (Shape::kReallocateRegisters) warpgroup_release_registers<Shape::kProducerRegisters>();
    const int thread = threadIdx.x, chunk = thread % 8, row_in_pass = thread / 8;  // 16 rows per pass
    const int column = chunk * 8;
    auto swizzled = [&](int row) { return row * Shape::kRowBytes + ((chunk ^ (row & 7)) << 4); };
    // GEMM1's tiles of a row block are written (acquire; the named barrier below orders the other producer
    // threads' A reads after it).
    auto await_row_block = [&](std::int64_t row_block) {
      if (await_rows != nullptr && expert_of(row_block) >= 0) {
        while (load_acquire_gpu(await_rows + row_block) < await_target) __nanosleep(64);
        if (a_rows != nullptr) fence_async_global();  // the TMA (async proxy) reads them after the acquire
      }
    };
    // Thread 0 (a pair's leader's) takes the next tile with an expert for the whole warpgroup (and the
    // partner's): its coordinates packed (row block or pair << 32 | column block; the warpgroup and the
    // partner need not find them again), or -1 when none is left. Thread 0 of each CTA also keeps, for
    // itself, how many of its row block's last consumer warpgroups have only padding rows (idle_consumers).
    long long idle_consumers = 0;
    auto take_tile = [&](int taken) {
      const int slot = taken % Shape::kTakeSlots;
      if (thread == 0 && rank == 0) {
        long long tile_taken = -1;
        for (;;) {
          const unsigned long long tile = atomicAdd(next_tile, 1ull);
          if (tile >= static_cast<unsigned long long>(tiles)) break;
          int run_expert, padding;
          const BlockCoordinates at = raster_tile(static_cast<std::int64_t>(tile), run_expert, padding);
          const int row_block = at.row_block;
          const bool has_expert = run_expert >= 0 ||  // the expert raster knows it without another load
                                  (kPair ? expert_of(2 * row_block) >= 0 || expert_of(2 * row_block + 1) >= 0
                                         : block_expert[row_block] >= 0);
          if (has_expert) {
            tile_taken = static_cast<long long>(row_block) << 32 | at.column_block;
            idle_consumers = padding;
            await_row_block(kPair ? 2 * row_block : row_block);  // a partner awaits its own row block
            break;
          }
        }
        store_shared_s64(take_slot(slot), tile_taken);
        if constexpr (kPair) {
          store_shared_cluster_s64(cluster_address(take_slot(slot), partner), tile_taken);
          mbarrier_arrive_remote<true>(cluster_address(take_barrier(slot), partner));
        }
      } else if (kPair && thread == 0) {  // the partner: the leader's word, its own acquire of the rows and
                                          // its own row block's padding warpgroups
        mbarrier_wait_cluster(take_barrier(slot), (taken / Shape::kTakeSlots) & 1);
        const long long tile_taken = load_shared_s64(take_slot(slot));
        if (tile_taken >= 0) {
          const std::int64_t own = 2 * (tile_taken >> 32) + 1;
          const bool has_run = raster.block_runs != nullptr && own < rows;
          const BlockRun run = has_run ? load_block_run(raster.block_runs + own) : BlockRun{0, 0, -1, 0};
          await_row_block(own);
          idle_consumers = padding_warpgroups(run, own, Shape::kConsumers);
        }
      }
      named_barrier_sync<1, 128>();
      return static_cast<std::int64_t>(load_shared_s64(take_slot(slot)));
    };
    int issued = 0, signalled = 0;  // stages requested; stages this thread has signalled full
    // Signals every stage up to `last` (inclusive) whose copies of this thread have landed.
    auto signal_through = [&](int last) {
      for (; signalled <= last; ++signalled) mbarrier_arrive(full_barrier(signalled % Shape::kStages));
    };
    for (int taken = 0;; ++taken) {
      const std::int64_t tile = take_tile(taken);
      if (tile < 0) break;
      const BlockCoordinates block{static_cast<int>(tile >> 32), static_cast<int>(tile & 0xffffffff)};
      // This CTA's row block and expert; a pair multicasts where both row blocks have the same expert.
      const std::int64_t row_block = kPair ? 2 * static_cast<std::int64_t>(block.row_block) + rank
                                           : static_cast<std::int64_t>(block.row_block);
      const int expert = expert_of(row_block);
      const bool multicast = kPair && expert >= 0 && expert == expert_of(row_block ^ 1);
      const long long consumer_tile = expert >= 0 ? row_block * columns + block.column_block : kIdleTile;
      const std::int64_t row0 = row_block * Shape::kBlockM;
      const bf16* a_source[Shape::kChunksA];
#pragma unroll
      for (int i = 0; i < Shape::kChunksA; ++i) {
        a_source[i] = expert >= 0 && a_rows == nullptr ? a_row(row0 + row_in_pass + 16 * i) : nullptr;
      }
      const int n0 = block.column_block * Shape::kBlockN;
      for (int k_tile = 0; k_tile < k_tiles; ++k_tile, ++issued) {
        const int stage = issued % Shape::kStages;
        mbarrier_wait(empty_barrier(stage), ((issued / Shape::kStages) & 1) ^ 1);
        const unsigned stage_a = shared + stage * Shape::kStageBytes;
        const unsigned stage_b = stage_a + Shape::kStageABytes;
        if (thread == 0) {
          if (k_tile == 0) {
            store_shared_s64(stage_tile(stage), consumer_tile >= 0
                                                    ? consumer_tile | idle_consumers << kIdleConsumersShift
                                                    : consumer_tile);
          }
          // With TMA rows the barrier expects the A box's bytes too (its load follows the expectation).
          const int a_bytes = expert >= 0 && a_rows != nullptr ? Shape::kStageABytes : 0;
          if (multicast) {  // this CTA's half of the box, into both CTAs' stage
            mbarrier_arrive_expect_bytes(full_barrier(stage), Shape::kStageBBytes + a_bytes);
            tma_load_panel_multicast(stage_b + rank * (Shape::kStageBBytes / 2), weights,
                                     n0 + static_cast<int>(rank) * Shape::kBoxRows, k_tile, expert,
                                     full_barrier(stage), (1u << Shape::kClusterM) - 1);
          } else if (expert >= 0) {
            mbarrier_arrive_expect_bytes(full_barrier(stage), Shape::kStageBBytes + a_bytes);
#pragma unroll
            for (int box = 0; box < Shape::kClusterM; ++box) {
              tma_load_panel(stage_b + box * (Shape::kStageBBytes / Shape::kClusterM), weights,
                             n0 + box * Shape::kBoxRows, k_tile, expert, full_barrier(stage));
            }
          } else {
            mbarrier_arrive(full_barrier(stage));  // an idle CTA of a pair: no weights
          }
          if (a_bytes > 0) {
            tma_load_2d(stage_a, a_rows, k_tile * Shape::kBlockK, static_cast<int>(row0),
                        full_barrier(stage));
          }
        }
        if (a_rows == nullptr) {
          const std::int64_t k0 = static_cast<std::int64_t>(k_tile) * Shape::kBlockK + column;
#pragma unroll
          for (int i = 0; i < Shape::kChunksA; ++i) {
            const bool valid = a_source[i] != nullptr && k0 < a_columns;
            cp_async_16(stage_a + swizzled(row_in_pass + 16 * i), valid ? a_source[i] + k0 : placeholder,
                        valid);
          }
          if (copies_signal) {
            cp_async_arrive_noinc(full_barrier(stage));
            ++signalled;
            continue;  // no groups to commit or wait for
          }
        }
        cp_async_commit();  // (an empty group with TMA rows)
        if (a_rows != nullptr) {
          signal_through(issued);  // no copies of this thread's: the barrier waits for the TMA's bytes alone
        } else if (issued - Shape::kSignalLag >=
                   signalled) {  // this thread's copies of stage issued - lag landed
          cp_async_wait<Shape::kSignalLag>();
          fence_async_shared();
          signal_through(issued - Shape::kSignalLag);
        }
      }
      // The tile's last stages: signalled now, not after the next tile's first ones (taking a tile and
      // reading its rows' ids costs a few dependent global round trips the consumers would wait through:
      // measured 2-5% of the forward at M >= 1024, bench/results/2026-11-27-h100-session6.md).
      if (copies_signal) continue;
      cp_async_wait<0>();
      fence_async_shared();
      signal_through(issued - 1);
    }
    if (copies_signal) {
      cp_async_wait_all();  // no copies outstanding when the producer exits (none are committed to groups)
    } else {
      cp_async_wait<0>();
      fence_async_shared();
      signal_through(issued - 1);
    }
    // The end: a stage that carries no data and the tile index -1.
    const int stage = issued % Shape::kStages;
    mbarrier_wait(empty_barrier(stage), ((issued / Shape::kStages) & 1) ^ 1);
    if (thread == 0) {
      store_shared_s64(stage_tile(stage), kEndTile);
      mbarrier_arrive(full_barrier(stage));
    }
    mbarrier_arrive(full_barrier(stage));
    // A hand-over GEMM2 skipped the grid-wide wait; it still waits before it exits, so that it completes
    // only after GEMM1 has (the next forward's memset of the counters must not meet GEMM1's last atomics).
    if (await_rows != nullptr) cuda::wait_for_prior_grids();
    return;
  }

  // A consumer warpgroup: rows 64 w .. 64 w + 63 of every tile.
  if constexpr (Shape::kReallocateRegisters) warpgroup_claim_registers<Shape::kConsumerRegisters>();
  const int thread = threadIdx.x - 128, consumer = thread / 128, lane = thread % 32;
  int consumed = 0;
  float acc[Shape::kAccumulators];
  // The first stage of a tile names the tile (or kEndTile).
  auto tile_at = [&](int index) {
    mbarrier_wait(full_barrier(index % Shape::kStages), (index / Shape::kStages) & 1);
    return static_cast<long long>(load_shared_s64(stage_tile(index % Shape::kStages)));
  };
  // The stage's reads have retired: single CTAs, every thread arrives; pairs, one lane per warp on each
  // CTA's barrier (the partner may multicast into this stage). A CTA-scope release for the remote arrival, as
  // CUTLASS's cluster barriers do: it carries no data, and a cluster-scope one per k-tile cost 1.6-1.9x.
  const unsigned partner_empty = kPair ? cluster_address(empty_barrier(0), partner) : 0u;
  auto release = [&](int stage) {
    if constexpr (kPair) {
      __syncwarp();
      if (lane == 0) mbarrier_arrive(empty_barrier(stage));
      if (lane == 1) mbarrier_arrive_remote<false>(partner_empty + 8u * static_cast<unsigned>(stage));
    } else {
      mbarrier_arrive(empty_barrier(stage));
    }
  };
  // AsyncStores: the row block of this warp's last stores (-1: none outstanding). Waits for them and counts
  // their rows (release: the wait makes the TMA's writes visible to this lane, the fences order them before
  // the count).
  std::int64_t stored_row_block = -1;
  auto finish_stores = [&] {
    if (lane == 0 && stored_row_block >= 0) {
      bulk_wait_all();
      if (signal_rows != nullptr) {
        fence_async_global();
        __threadfence();
        atomicAdd(signal_rows + stored_row_block, 1u);
      }
    }
    __syncwarp();  // the staging rows are free again
    stored_row_block = -1;
  };
  for (long long word = tile_at(consumed); word != kEndTile; word = tile_at(consumed)) {
    const long long tile = word >= 0 ? word & kTileIndexMask : word;
    const bool active = tile != kIdleTile;
    const bool multiplies =
        active && consumer < Shape::kConsumers - (word >= 0 ? word >> kIdleConsumersShift : 0);
#pragma unroll
    for (int i = 0; i < Shape::kAccumulators; ++i) acc[i] = 0.0f;
    for (int k_tile = 0; k_tile < k_tiles; ++k_tile, ++consumed) {
      const int stage = consumed % Shape::kStages;
      if (k_tile > 0) mbarrier_wait(full_barrier(stage), (consumed / Shape::kStages) & 1);
      if (multiplies) {
        // The producers' cp.async wrote this stage through the generic proxy; the wgmma reads it through the
        // async proxy (their own fence, with the lagged signal, came before their arrival).
        if (copies_signal) fence_async_shared();
        const unsigned stage_a = shared + stage * Shape::kStageBytes;
        const std::uint64_t a_descriptor = smem_descriptor(stage_a + consumer * 64 * Shape::kRowBytes);
        wgmma_k_tile<Shape>(acc, a_descriptor, smem_descriptor(stage_a + Shape::kStageABytes));
      }
      if (k_tile > 0) release((consumed - 1) % Shape::kStages);  // the previous k-tile's group retired
    }
    wgmma_wait<0>();
    fence_accumulators(acc);
    release((consumed - 1) % Shape::kStages);
    if (!active) continue;
    const BlockCoordinates block{static_cast<int>(tile / columns), static_cast<int>(tile % columns)};
    if constexpr (AsyncStores) {
      finish_stores();
      epilogue(block, acc, thread);
      stored_row_block = block.row_block;
    } else {
      epilogue(block, acc, thread);
    }
    if (!AsyncStores && signal_rows != nullptr) {  // this warp's rows of the tile are written: count them
      __syncwarp();
      if (lane == 0) {
        __threadfence();
        atomicAdd(signal_rows + block.row_block, 1u);
      }
    }
  }
  if constexpr (AsyncStores) finish_stores();
  if (await_rows != nullptr) cuda::wait_for_prior_grids();  // as the producer's, before exiting
}

// A consumer warp's staged rows out by TMA (lane 0 issues and commits them): the kStagingRows rows x
// kBlockN / 2 columns in the warp's staging, to `map` rows from `row`, columns from `column` (boxes of
// kEpilogueBoxColumns; box parts past the map's rows or columns are not written).
template <class Shape>
__device__ __forceinline__ void store_staged_rows(const CUtensorMap* map, unsigned warp_staging,
                                                  std::int64_t column, std::int64_t row, int lane) {
  fence_async_shared();  // the generic-proxy writes to the staging, before the TMA reads them
  __syncwarp();
  if (lane == 0) {
#pragma unroll
    for (int box = 0; box < Shape::kBlockN / 2 / Shape::kEpilogueBoxColumns; ++box) {
      tma_store_2d(map, warp_staging + static_cast<unsigned>(box * Shape::kEpilogueBoxBytes),
                   static_cast<int>(column + box * Shape::kEpilogueBoxColumns), static_cast<int>(row));
    }
    bulk_commit_group();
  }
}

// Before a consumer warp writes its staging again: lane 0 waits until the TMA has read the last stores.
__device__ __forceinline__ void await_staging_read(int lane) {
  if (lane == 0) bulk_wait_all_read();
  __syncwarp();
}

// GEMM1's epilogue by TMA: consumer warp w (rows 16 w .. 16 w + 15 of the tile) writes act(gate) * up as
// bf16 into its staging rows (staging_offset: the boxes' swizzle), and lane 0 stores them to the intermediate
// (`map`: its rows in sorted order, so a warp's rows are one box of rows), all 16 rows at once or
// (kStagingRows 8) rows 0-7, then 8-15. Padding rows hold zeros (their A rows were zeros) and are written as
// such; a warp whose 16 rows are all padding stores nothing, unless params.write_padding_warps (GEMM2 reads
// whole row blocks by TMA). Columns past I_pad (a column block overhanging 2 I_pad) fall outside the map and
// are dropped. The caller waits for the stores (wgmma_warp_specialized's AsyncStores) before this warp's next
// call.
template <class Shape>
__device__ __forceinline__ void gemm1_epilogue_tma(const Gemm1Params& params, const CUtensorMap* map,
                                                   unsigned staging, const float (&acc)[Shape::kAccumulators],
                                                   std::int64_t row0, std::int64_t n0, int thread) {
  const int lane = thread % 32, warp = thread / 32;
  const std::int64_t warp_row0 = row0 + 16 * warp;
  const bool any_row =
      __any_sync(0xffffffffu, lane < 16 && params.sorted_ids[warp_row0 + lane] >= 0);  // (warp-uniform)
  if (!any_row && !params.write_padding_warps) return;
  const unsigned warp_staging = staging + static_cast<unsigned>(warp * Shape::kWarpStagingBytes);
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    if (Shape::kStagingRows == 8 && half == 1) await_staging_read(lane);
    const int row = (lane / 4 + 8 * half) % Shape::kStagingRows;  // in the staging
    // The activation chosen once per half, not per element: SiLU's code stays short and contiguous (the
    // per-element choice interleaved GELU's erf with it: a long epilogue, and the kernels ran 2-5% slower).
    with_activation(params.activation, [&]<int kActivation>() {
#pragma unroll
      for (int j = 0; j < Shape::kBlockN / 8; ++j) {
        if ((j & 3) >= 2) continue;
        // Gate group j (columns 8 j .. of the tile) and its up group j + 2 make output column
        // 16 (j / 4) + 8 (j & 3) + 2 (lane & 3).
        const float v0 = gated_activation<kActivation>(acc[4 * j + 2 * half], acc[4 * (j + 2) + 2 * half]);
        const float v1 =
            gated_activation<kActivation>(acc[4 * j + 2 * half + 1], acc[4 * (j + 2) + 2 * half + 1]);
        const __nv_bfloat162 packed = __floats2bfloat162_rn(v0, v1);
        store_shared_b32(
            warp_staging + staging_offset<Shape>(row, 16 * (j / 4) + 8 * (j & 3) + 2 * (lane & 3)),
            *reinterpret_cast<const unsigned*>(&packed));
      }
    });
    if (Shape::kStagingRows == 8 || half == 1) {
      store_staged_rows<Shape>(map, warp_staging, n0 / 2,
                               warp_row0 + (Shape::kStagingRows == 8 ? 8 * half : 0), lane);
    }
  }
}

// GEMM2's epilogue in sorted order (Gemm2Launch::sorted_rows): the weighted rows of consumer warp w (rows
// 16 w .. 16 w + 15 of the tile) go to rows row0 + 16 w .. of `map` by TMA, as GEMM1's do, in two passes of
// kBlockN / 2 columns (each all 16 rows at once or by 8, as GEMM1's) through the warp's staging (lane 0 waits
// until the previous stores have read it). Padding rows get zeros (weight 0); a warp whose rows are all
// padding stores nothing. Columns past H fall outside the map. The caller waits for the stores before this
// warp's next call.
template <class Shape>
__device__ __forceinline__ void gemm2_epilogue_tma(const Gemm2Params& params, const CUtensorMap* map,
                                                   unsigned staging, const float (&acc)[Shape::kAccumulators],
                                                   std::int64_t row0, std::int64_t n0, int thread) {
  const int lane = thread % 32, warp = thread / 32, q = lane & 3;
  const std::int64_t warp_row0 = row0 + 16 * warp;
  float weight[2];
  bool any_row = false;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const std::int32_t pair = params.sorted_ids[warp_row0 + lane / 4 + 8 * half];
    weight[half] = pair >= 0 ? params.topk_weights[pair] : 0.0f;
    any_row = any_row || pair >= 0;
  }
  if (!__any_sync(0xffffffffu, any_row)) return;
  const unsigned warp_staging = staging + static_cast<unsigned>(warp * Shape::kWarpStagingBytes);
  constexpr int kGroupsPerPass = Shape::kBlockN / 16;  // 8-column groups in kBlockN / 2 columns
#pragma unroll
  for (int pass = 0; pass < 2; ++pass) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      if (pass + half > 0 && (Shape::kStagingRows == 8 || half == 0)) await_staging_read(lane);
      const int row = (lane / 4 + 8 * half) % Shape::kStagingRows;  // in the staging
#pragma unroll
      for (int g = 0; g < kGroupsPerPass; ++g) {
        const int j = pass * kGroupsPerPass + g;  // columns 8 j + 2 q, + 1 of the tile
        const __nv_bfloat162 packed = __floats2bfloat162_rn(weight[half] * acc[4 * j + 2 * half],
                                                            weight[half] * acc[4 * j + 2 * half + 1]);
        store_shared_b32(warp_staging + staging_offset<Shape>(row, 8 * g + 2 * q),
                         *reinterpret_cast<const unsigned*>(&packed));
      }
      if (Shape::kStagingRows == 8 || half == 1) {
        store_staged_rows<Shape>(map, warp_staging, n0 + pass * (Shape::kBlockN / 2),
                                 warp_row0 + (Shape::kStagingRows == 8 ? 8 * half : 0), lane);
      }
    }
  }
}

#endif  // sm_90a

template <class Shape>
__global__ void __launch_bounds__(Shape::kThreads, 1)
    wgmma_gemm1_warp_specialized_kernel(Gemm1Params params, const __grid_constant__ CUtensorMap w13_map,
                                        unsigned long long* next_tile, const std::int64_t* used_rows,
                                        std::int64_t row_blocks, std::int64_t column_blocks,
                                        RowBlockSync sync,
                                        const __grid_constant__ CUtensorMap intermediate_map) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ __align__(1024) unsigned char shared[];
  const unsigned base = aligned_shared_base(shared);
  const unsigned staging = base + Shape::kStages * Shape::kStageBytes;
  wgmma_warp_specialized<Shape, true>(
      params.block_expert, next_tile, used_rows, row_blocks, column_blocks, params.a_columns, params.k_tiles,
      &w13_map, nullptr, params.w13, base, sync.done, nullptr, 0,
      [&](std::int64_t row) -> const bf16* {
        const std::int32_t pair = params.sorted_ids[row];
        return pair >= 0 ? params.hidden + static_cast<std::int64_t>(pair / params.top_k) * params.lda
                         : nullptr;
      },
      [&](BlockCoordinates block, const float(&acc)[Shape::kAccumulators], int thread) {
        gemm1_epilogue_tma<Shape>(params, &intermediate_map, staging, acc,
                                  static_cast<std::int64_t>(block.row_block) * Shape::kBlockM,
                                  static_cast<std::int64_t>(block.column_block) * Shape::kBlockN, thread);
      },
      params.async_signal, params.raster);
  if constexpr (Shape::kPair) cluster_sync();
#elif defined(__CUDA_ARCH__)
  __trap();  // no wgmma in this device code: never write nothing silently (hosts check first)
#endif
}

template <class Shape>
__global__ void __launch_bounds__(Shape::kThreads, 1)
    wgmma_gemm2_warp_specialized_kernel(Gemm2Params params, const __grid_constant__ CUtensorMap w2_map,
                                        unsigned long long* next_tile, const std::int64_t* used_rows,
                                        std::int64_t row_blocks, std::int64_t column_blocks,
                                        RowBlockSync sync, const __grid_constant__ CUtensorMap sorted_map,
                                        bool sorted_rows, const __grid_constant__ CUtensorMap a_map,
                                        bool tma_a) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ __align__(1024) unsigned char shared[];
  const unsigned base = aligned_shared_base(shared);
  const unsigned staging = base + Shape::kStages * Shape::kStageBytes;
  wgmma_warp_specialized<Shape, true>(
      params.block_expert, next_tile, used_rows, row_blocks, column_blocks, params.lda, params.k_tiles,
      &w2_map, tma_a ? &a_map : nullptr, params.w2, base, nullptr, sync.done, sync.target,
      [&](std::int64_t row) -> const bf16* {
        return params.sorted_ids[row] >= 0 ? params.intermediate + row * params.lda : nullptr;
      },
      [&](BlockCoordinates block, const float(&acc)[Shape::kAccumulators], int thread) {
        const std::int64_t row0 = static_cast<std::int64_t>(block.row_block) * Shape::kBlockM;
        const std::int64_t n0 = static_cast<std::int64_t>(block.column_block) * Shape::kBlockN;
        if (sorted_rows) {
          gemm2_epilogue_tma<Shape>(params, &sorted_map, staging, acc, row0, n0, thread);
        } else {
          gemm2_epilogue<Shape>(params, acc, row0, n0, thread);
        }
      },
      params.async_signal, params.raster);
  if constexpr (Shape::kPair) cluster_sync();
#elif defined(__CUDA_ARCH__)
  __trap();  // no wgmma in this device code: never write nothing silently (hosts check first)
#endif
}

}  // namespace fusedmoe::cuda_fused
