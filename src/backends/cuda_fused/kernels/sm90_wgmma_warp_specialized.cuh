// Warp-specialised, persistent variants of the wgmma GEMMs (sm_90a): one block per SM takes tiles of the
// grouped raster (grouped_tile) one after another from a device counter (so tiles start in raster order as
// blocks free up, like the hardware's dispatch of one-tile blocks: the tiles that share A rows or a weight
// slice run at the same time and meet in the L2; a static round-robin drifted apart and read deepseek-v3's
// weights 1.5x over). A producer warpgroup and one or two consumer warpgroups:
//   - the producer (few registers) fills a ring of kStages shared-memory stages: the weight tile by TMA (one
//     thread; 256 rows x 64 columns in the 128-byte swizzle, rows past the expert's end read as zeros), the
//     A rows by cp.async (gathered by sorted id, so they are not a TMA box; every producer thread copies
//     kChunksA chunks of 16 bytes). A thread signals a stage full once its own copies into it have landed
//     and are fenced for the async proxy (cp.async.wait_group kSignalLag stages behind its issue, and all of
//     a tile's at its end), so the full barrier counts 128 producer arrivals + the TMA thread's expect_tx.
//     The first stage of a tile carries the tile's index for the consumers; a stage carrying -1 ends the
//     block;
//   - each consumer (64 rows, 128 fp32 accumulators per thread) waits for a full stage, issues
//     wgmma.m64n256k16 x 4 over it, and gives the stage back once that wgmma group retired. After a tile's
//     last k-tile the consumers write the epilogue while the producer already loads the next tile's stages.
// GEMM1 -> GEMM2 hand-over per row block (RowBlockSync): GEMM1 lets GEMM2 launch at once and counts each
// finished tile per row block; GEMM2 does not wait for GEMM1 as a whole but takes a row block's tiles once
// all of that row block's GEMM1 tiles are written. GEMM2's blocks take the SMs GEMM1's blocks leave in its
// tail, instead of the SMs idling until GEMM1's last tile is done.
// Same operands, epilogues and k16 order as the other wgmma kernels, so the same bits.
#pragma once

#include "backends/cuda_fused/kernels/sm90_async_ops.cuh"
#include "backends/cuda_fused/kernels/sm90_wgmma_grouped_gemm.cuh"

namespace fusedmoe::cuda_fused {

// The hand-over (see above): `done` [row blocks], zeroed before the align (launch_zero_tile_counters);
// GEMM1 adds one per consumer warp and tile, GEMM2 waits for `target` (GEMM1's column blocks x its consumer
// warps). done == nullptr: GEMM2 waits for the whole of GEMM1 (grid_dependency.cuh).
struct RowBlockSync {
  unsigned* done = nullptr;
  unsigned target = 0;
};

template <int Consumers, int Stages, int BlockN = 256>
struct WarpSpecializedShape {
  static constexpr int kConsumers = Consumers;  // warpgroups of 64 rows
  static constexpr int kBlockM = 64 * kConsumers, kBlockN = BlockN, kBlockK = 64, kStages = Stages;
  static constexpr int kThreads = 128 * (1 + kConsumers);
  static constexpr int kRowBytes = 128;
  static constexpr int kStageABytes = kBlockM * kRowBytes, kStageBBytes = kBlockN * kRowBytes;
  static constexpr int kStageBytes = kStageABytes + kStageBBytes;
  // Per stage a full and an empty mbarrier and the tile index it starts; two words to broadcast a tile
  // index among the producers.
  static constexpr int kControlBytes = (3 * 8 * kStages + 2 * 8 + 127) / 128 * 128;
  static constexpr int kSharedBytes = kStages * kStageBytes + kControlBytes + 1024;  // + alignment slack
  static constexpr int kChunksA = kBlockM * 8 / 128;  // 16-byte A chunks per producer thread and stage
  static constexpr int kAccumulators = kBlockN / 2;   // fp32 per consumer thread: 64 x N over 128 threads
  static constexpr int kSignalLag = 2;                // stages a producer thread's cp.async run ahead
  // Two consumers need more than the 168 registers 384 threads get evenly: the producers give theirs back
  // (128 x 56 + 256 x 224 <= 64 Ki). One consumer (256 threads) has enough without it.
  static constexpr bool kReallocateRegisters = kConsumers == 2;
  static constexpr int kProducerRegisters = 56, kConsumerRegisters = 224;
  static_assert(kConsumers == 1 || kConsumers == 2, "instantiated: one or two consumer warpgroups");
  static_assert(kBlockN == 128 || kBlockN == 256, "wgmma.m64n128k16 or m64n256k16; a TMA box holds 256 rows");
  // A consumer holds two stages (the k-tile in flight and the one before it until wgmma_wait<1>), and a
  // producer thread signals a stage kSignalLag issues later: fewer stages would deadlock.
  static_assert(kSignalLag + 2 <= kStages, "the ring must outlast the consumers' hold and the signal lag");
};

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)

// a_row(row) -> the sorted row's A source (row start, nullptr = a padding row: zeros); epilogue(
// BlockCoordinates, acc, consumer thread). `next_tile` counts the tiles handed out: zero before the launch
// (written before the kernel that precedes this one, which this kernel waits for before reading it).
// `used_rows` (nullptr: all `row_blocks`) bounds the row blocks handed out, so no block spends its tail
// taking tiles of the unused worst-case blocks one atomic at a time. Waits for the previous kernel before
// reading anything, except with `await_rows` (GEMM2 of a RowBlockSync): then block_expert, used_rows and
// next_tile come from kernels before the previous one (complete once it let this grid launch), and a row
// block's A rows are read once await_rows[row block] reaches `await_target`. `signal_rows` (GEMM1 of a
// RowBlockSync): lets the next grid launch at once and counts each consumer warp's finished tile there.
template <class Shape, class ARow, class Epilogue>
__device__ __forceinline__ void wgmma_warp_specialized(
    const std::int32_t* block_expert, unsigned long long* next_tile, const std::int64_t* used_rows,
    std::int64_t row_blocks, std::int64_t columns, std::int64_t a_columns, int k_tiles,
    const CUtensorMap* weights, const void* placeholder, unsigned shared, unsigned* signal_rows,
    const unsigned* await_rows, unsigned await_target, ARow a_row, Epilogue epilogue) {
  const unsigned control = shared + Shape::kStages * Shape::kStageBytes;
  auto full_barrier = [&](int stage) { return control + 8u * static_cast<unsigned>(stage); };
  auto empty_barrier = [&](int stage) {
    return control + 8u * static_cast<unsigned>(Shape::kStages + stage);
  };
  auto stage_tile = [&](int stage) {
    return control + 8u * static_cast<unsigned>(2 * Shape::kStages + stage);
  };
  auto broadcast = [&](int slot) { return control + 8u * static_cast<unsigned>(3 * Shape::kStages + slot); };
  if (threadIdx.x == 0) {
    tma_prefetch_descriptor(weights);
    for (int stage = 0; stage < Shape::kStages; ++stage) {
      mbarrier_init(full_barrier(stage), 128 + 1);  // the producers' arrivals + the TMA thread's expect_tx
      mbarrier_init(empty_barrier(stage), 128 * Shape::kConsumers);
    }
    mbarrier_init_fence();
  }
  __syncthreads();
  if (await_rows == nullptr) cuda::wait_for_prior_grids();
  if (signal_rows != nullptr) cuda::allow_dependent_grids();
  const std::int64_t used_blocks =
      used_rows == nullptr ? row_blocks : (*used_rows + Shape::kBlockM - 1) / Shape::kBlockM;
  const std::int64_t rows = used_blocks < row_blocks ? used_blocks : row_blocks;
  const std::int64_t tiles = rows * columns;

  if (threadIdx.x < 128) {  // the producer warpgroup
    if constexpr (Shape::kReallocateRegisters) warpgroup_release_registers<Shape::kProducerRegisters>();
    const int thread = threadIdx.x, chunk = thread % 8, row_in_pass = thread / 8;  // 16 rows per pass
    const int column = chunk * 8;
    auto swizzled = [&](int row) { return row * Shape::kRowBytes + ((chunk ^ (row & 7)) << 4); };
    // Thread 0 takes the next tile with an expert (or -1 when none is left) for the whole warpgroup.
    auto take_tile = [&](int slot) {
      if (thread == 0) {
        long long taken = -1;
        for (;;) {
          const unsigned long long tile = atomicAdd(next_tile, 1ull);
          if (tile >= static_cast<unsigned long long>(tiles)) break;
          const int row_block = grouped_tile(static_cast<std::int64_t>(tile), rows, columns).row_block;
          if (block_expert[row_block] >= 0) {
            taken = static_cast<long long>(tile);
            // GEMM1's tiles of this row block are written (acquire; the named barrier below orders the
            // other producer threads' A reads after it).
            if (await_rows != nullptr) {
              while (load_acquire_gpu(await_rows + row_block) < await_target) __nanosleep(64);
            }
            break;
          }
        }
        store_shared_s64(broadcast(slot), taken);
      }
      named_barrier_sync<1, 128>();
      return static_cast<std::int64_t>(load_shared_s64(broadcast(slot)));
    };
    int issued = 0, signalled = 0;  // stages requested; stages this thread has signalled full
    // Signals every stage up to `last` (inclusive) whose copies of this thread have landed.
    auto signal_through = [&](int last) {
      for (; signalled <= last; ++signalled) mbarrier_arrive(full_barrier(signalled % Shape::kStages));
    };
    for (int taken = 0;; ++taken) {
      const std::int64_t tile = take_tile(taken & 1);  // two slots: a slot is rewritten after a barrier
      if (tile < 0) break;
      const BlockCoordinates block = grouped_tile(tile, rows, columns);
      const int expert = block_expert[block.row_block];
      const std::int64_t row0 = static_cast<std::int64_t>(block.row_block) * Shape::kBlockM;
      const bf16* a_source[Shape::kChunksA];
#pragma unroll
      for (int i = 0; i < Shape::kChunksA; ++i) a_source[i] = a_row(row0 + row_in_pass + 16 * i);
      const int n0 = block.column_block * Shape::kBlockN;
      for (int k_tile = 0; k_tile < k_tiles; ++k_tile, ++issued) {
        const int stage = issued % Shape::kStages;
        mbarrier_wait(empty_barrier(stage), ((issued / Shape::kStages) & 1) ^ 1);
        const unsigned stage_a = shared + stage * Shape::kStageBytes;
        if (thread == 0) {
          if (k_tile == 0) store_shared_s64(stage_tile(stage), tile);
          mbarrier_arrive_expect_bytes(full_barrier(stage), Shape::kStageBBytes);
          tma_load_panel(stage_a + Shape::kStageABytes, weights, n0, k_tile, expert, full_barrier(stage));
        }
        const std::int64_t k0 = static_cast<std::int64_t>(k_tile) * Shape::kBlockK + column;
#pragma unroll
        for (int i = 0; i < Shape::kChunksA; ++i) {
          const bool valid = a_source[i] != nullptr && k0 < a_columns;
          cp_async_16(stage_a + swizzled(row_in_pass + 16 * i), valid ? a_source[i] + k0 : placeholder,
                      valid);
        }
        cp_async_commit();
        if (issued - Shape::kSignalLag >= signalled) {  // this thread's copies of stage issued - lag landed
          cp_async_wait<Shape::kSignalLag>();
          fence_async_shared();
          signal_through(issued - Shape::kSignalLag);
        }
      }
      // The tile's last stages: signalled now, not after the next tile's first ones (taking a tile and
      // reading its rows' ids costs a few dependent global round trips the consumers would wait through:
      // measured 2-5% of the forward at M >= 1024, bench/results/2026-11-27-h100-session6.md).
      cp_async_wait<0>();
      fence_async_shared();
      signal_through(issued - 1);
    }
    cp_async_wait<0>();
    fence_async_shared();
    signal_through(issued - 1);
    // The end: a stage that carries no data and the tile index -1.
    const int stage = issued % Shape::kStages;
    mbarrier_wait(empty_barrier(stage), ((issued / Shape::kStages) & 1) ^ 1);
    if (thread == 0) {
      store_shared_s64(stage_tile(stage), -1);
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
  const int thread = threadIdx.x - 128, consumer = thread / 128;
  int consumed = 0;
  float acc[Shape::kAccumulators];
  // The first stage of a tile names the tile (or -1: the end).
  auto tile_at = [&](int index) {
    mbarrier_wait(full_barrier(index % Shape::kStages), (index / Shape::kStages) & 1);
    return static_cast<std::int64_t>(load_shared_s64(stage_tile(index % Shape::kStages)));
  };
  for (std::int64_t tile = tile_at(consumed); tile >= 0; tile = tile_at(consumed)) {
#pragma unroll
    for (int i = 0; i < Shape::kAccumulators; ++i) acc[i] = 0.0f;
    for (int k_tile = 0; k_tile < k_tiles; ++k_tile, ++consumed) {
      const int stage = consumed % Shape::kStages;
      if (k_tile > 0) mbarrier_wait(full_barrier(stage), (consumed / Shape::kStages) & 1);
      const unsigned stage_a = shared + stage * Shape::kStageBytes;
      const std::uint64_t a_descriptor = smem_descriptor(stage_a + consumer * 64 * Shape::kRowBytes);
      wgmma_k_tile<Shape>(acc, a_descriptor, smem_descriptor(stage_a + Shape::kStageABytes));
      if (k_tile > 0)  // the previous k-tile's wgmma group has retired: its stage may be refilled
        mbarrier_arrive(empty_barrier((consumed - 1) % Shape::kStages));
    }
    wgmma_wait<0>();
    fence_accumulators(acc);
    mbarrier_arrive(empty_barrier((consumed - 1) % Shape::kStages));
    const BlockCoordinates block = grouped_tile(tile, rows, columns);
    epilogue(block, acc, thread);
    if (signal_rows != nullptr) {  // this warp's rows of the tile are written: count them (release)
      __syncwarp();
      if (thread % 32 == 0) {
        __threadfence();
        atomicAdd(signal_rows + block.row_block, 1u);
      }
    }
  }
  if (await_rows != nullptr) cuda::wait_for_prior_grids();  // as the producer's, before exiting
}

#endif  // sm_90a

template <class Shape>
__global__ void __launch_bounds__(Shape::kThreads, 1)
    wgmma_gemm1_warp_specialized_kernel(Gemm1Params params, const __grid_constant__ CUtensorMap w13_map,
                                        unsigned long long* next_tile, const std::int64_t* used_rows,
                                        std::int64_t row_blocks, std::int64_t column_blocks,
                                        RowBlockSync sync) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ __align__(1024) unsigned char shared[];
  wgmma_warp_specialized<Shape>(
      params.block_expert, next_tile, used_rows, row_blocks, column_blocks, params.a_columns, params.k_tiles,
      &w13_map, params.w13, aligned_shared_base(shared), sync.done, nullptr, 0,
      [&](std::int64_t row) -> const bf16* {
        const std::int32_t pair = params.sorted_ids[row];
        return pair >= 0 ? params.hidden + static_cast<std::int64_t>(pair / params.top_k) * params.lda
                         : nullptr;
      },
      [&](BlockCoordinates block, const float(&acc)[Shape::kAccumulators], int thread) {
        gemm1_epilogue<Shape>(params, acc, static_cast<std::int64_t>(block.row_block) * Shape::kBlockM,
                              static_cast<std::int64_t>(block.column_block) * Shape::kBlockN, thread);
      });
#elif defined(__CUDA_ARCH__)
  __trap();  // no wgmma in this device code: never write nothing silently (hosts check first)
#endif
}

template <class Shape>
__global__ void __launch_bounds__(Shape::kThreads, 1)
    wgmma_gemm2_warp_specialized_kernel(Gemm2Params params, const __grid_constant__ CUtensorMap w2_map,
                                        unsigned long long* next_tile, const std::int64_t* used_rows,
                                        std::int64_t row_blocks, std::int64_t column_blocks,
                                        RowBlockSync sync) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ __align__(1024) unsigned char shared[];
  wgmma_warp_specialized<Shape>(
      params.block_expert, next_tile, used_rows, row_blocks, column_blocks, params.lda, params.k_tiles,
      &w2_map, params.w2, aligned_shared_base(shared), nullptr, sync.done, sync.target,
      [&](std::int64_t row) -> const bf16* {
        return params.sorted_ids[row] >= 0 ? params.intermediate + row * params.lda : nullptr;
      },
      [&](BlockCoordinates block, const float(&acc)[Shape::kAccumulators], int thread) {
        gemm2_epilogue<Shape>(params, acc, static_cast<std::int64_t>(block.row_block) * Shape::kBlockM,
                              static_cast<std::int64_t>(block.column_block) * Shape::kBlockN, thread);
      });
#elif defined(__CUDA_ARCH__)
  __trap();  // no wgmma in this device code: never write nothing silently (hosts check first)
#endif
}

}  // namespace fusedmoe::cuda_fused
