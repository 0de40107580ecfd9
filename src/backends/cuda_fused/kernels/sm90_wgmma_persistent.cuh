// Persistent variants of the wgmma GEMMs (sm_90a): one block per SM slot walks the tiles blockIdx.x,
// blockIdx.x + gridDim.x, ... of the grouped raster (grouped_tile), skipping row blocks without an expert.
// Its cp.async stream runs kStages - 2 k-tiles ahead across tile boundaries, so the next tile's first stages
// are in flight while this tile's epilogue writes; a non-persistent block starts every tile cold. Same
// operands, epilogues and k16 order as the non-persistent kernels, so the same bits.
#pragma once

#include "backends/cuda_fused/kernels/sm90_wgmma_grouped_gemm.cuh"

namespace fusedmoe::cuda_fused {

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)

// operands_of(tile, TileOperands&) sets up a tile's loads; epilogue(BlockCoordinates, acc) writes its result.
// Waits for the previous kernel before reading anything.
template <class Shape, class OperandsOf, class Epilogue>
__device__ __forceinline__ void wgmma_persistent(const std::int32_t* block_expert, std::int64_t rows,
                                                 std::int64_t columns, std::int64_t a_columns,
                                                 std::int64_t ldb, std::int64_t b_rows, int k_tiles,
                                                 const void* placeholder, unsigned shared,
                                                 OperandsOf operands_of, Epilogue epilogue) {
  const int thread = threadIdx.x, warpgroup = thread / 128;
  const int chunk = thread % 8, row_in_pass = thread / 8;
  const int column = chunk * 8;
  auto swizzled = [&](int row) { return row * Shape::kRowBytes + ((chunk ^ (row & 7)) << 4); };
  const std::int64_t tiles = rows * columns;
  auto next_valid = [&](std::int64_t tile) {  // this block's next tile with an expert, or `tiles`
    for (; tile < tiles; tile += gridDim.x) {
      if (block_expert[grouped_tile(tile, rows, columns).row_block] >= 0) return tile;
    }
    return tiles;
  };

  cuda::wait_for_prior_grids();
  // The loader: which tile and k-tile it requests next (kAhead k-tiles ahead of the multiplies).
  std::int64_t load_tile = next_valid(blockIdx.x);
  int load_k = 0, issued = 0;
  TileOperands<Shape> load;
  if (load_tile < tiles) operands_of(load_tile, load);
  auto issue = [&] {
    if (load_tile < tiles) {
      const int stage = issued % Shape::kStages;
      const std::int64_t k0 = static_cast<std::int64_t>(load_k) * Shape::kBlockK;
      const unsigned stage_a = shared + stage * Shape::kStageBytes;
      const unsigned stage_b = stage_a + Shape::kStageABytes;
#pragma unroll
      for (int i = 0; i < Shape::kChunksA; ++i) {
        const bool valid = load.a_source[i] != nullptr && k0 + column < a_columns;
        cp_async_16(stage_a + swizzled(row_in_pass + i * Shape::kRowsPerPass),
                    valid ? load.a_source[i] + k0 : placeholder, valid);
      }
#pragma unroll
      for (int i = 0; i < Shape::kChunksB; ++i) {
        const bool valid = load.b_first_row + i * Shape::kRowsPerPass < b_rows;
        cp_async_16(
            stage_b + swizzled(row_in_pass + i * Shape::kRowsPerPass),
            valid ? load.b_row0 + static_cast<std::int64_t>(i) * Shape::kRowsPerPass * ldb + k0 : placeholder,
            valid);
      }
      if (++load_k == k_tiles) {
        load_k = 0;
        load_tile = next_valid(load_tile + gridDim.x);
        if (load_tile < tiles) operands_of(load_tile, load);
      }
    }
    ++issued;  // stage numbers count the no-op requests past the last tile too (the loads all come first)
  };

  constexpr int kAhead = Shape::kStages - 2;
#pragma unroll
  for (int stage = 0; stage < kAhead; ++stage) {
    issue();
    cp_async_commit();
  }
  std::int64_t compute_tile = next_valid(blockIdx.x);
  int compute_k = 0, computed = 0;
  float acc[Shape::kAccumulators] = {};
  while (compute_tile < tiles) {
    cp_async_wait<kAhead - 1>();  // this thread's chunks of k-tile `computed` have landed
    fence_async_shared();         // ... and are visible to wgmma's proxy
    __syncthreads();              // every thread's chunks; every warpgroup retired wgmma group computed - 2
    issue();
    cp_async_commit();

    const unsigned stage_a = shared + (computed % Shape::kStages) * Shape::kStageBytes;
    const std::uint64_t a_descriptor = smem_descriptor(stage_a + warpgroup * 64 * Shape::kRowBytes);
    const std::uint64_t b_descriptor = smem_descriptor(stage_a + Shape::kStageABytes);
    fence_accumulators(acc);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < Shape::kBlockK / 16; ++kk) {
      wgmma_tile<Shape>(acc, a_descriptor + 2 * kk, b_descriptor + 2 * kk);
    }
    wgmma_commit();
    wgmma_wait<1>();
    fence_accumulators(acc);
    ++computed;
    if (++compute_k == k_tiles) {  // the tile is complete: write it while the next tile's stages arrive
      wgmma_wait<0>();
      fence_accumulators(acc);
      epilogue(grouped_tile(compute_tile, rows, columns), acc);
#pragma unroll
      for (int i = 0; i < Shape::kAccumulators; ++i) acc[i] = 0.0f;
      compute_k = 0;
      compute_tile = next_valid(compute_tile + gridDim.x);
    }
  }
  wgmma_wait<0>();
  cp_async_wait<0>();
}

#endif  // sm_90a

template <class Shape>
__global__ void __launch_bounds__(Shape::kThreads, 1)
    wgmma_gemm1_persistent_kernel(Gemm1Params params, std::int64_t w13_rows, std::int64_t row_blocks,
                                  std::int64_t column_blocks) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ __align__(1024) unsigned char shared[];
  wgmma_persistent<Shape>(
      params.block_expert, row_blocks, column_blocks, params.a_columns, params.ldb, w13_rows, params.k_tiles,
      params.w13, aligned_shared_base(shared),
      [&](std::int64_t tile, TileOperands<Shape>& operands) {
        const BlockCoordinates block = grouped_tile(tile, row_blocks, column_blocks);
        gemm1_operands<Shape>(params, params.block_expert[block.row_block],
                              static_cast<std::int64_t>(block.row_block) * Shape::kBlockM,
                              static_cast<std::int64_t>(block.column_block) * Shape::kBlockN, operands);
      },
      [&](BlockCoordinates block, const float(&acc)[Shape::kAccumulators]) {
        gemm1_epilogue<Shape>(params, acc, static_cast<std::int64_t>(block.row_block) * Shape::kBlockM,
                              static_cast<std::int64_t>(block.column_block) * Shape::kBlockN, threadIdx.x);
      });
#elif defined(__CUDA_ARCH__)
  __trap();  // no wgmma in this device code: never write nothing silently (hosts check first)
#endif
}

template <class Shape>
__global__ void __launch_bounds__(Shape::kThreads, 1)
    wgmma_gemm2_persistent_kernel(Gemm2Params params, std::int64_t w2_rows, std::int64_t row_blocks,
                                  std::int64_t column_blocks) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ __align__(1024) unsigned char shared[];
  wgmma_persistent<Shape>(
      params.block_expert, row_blocks, column_blocks, params.lda, params.ldb, w2_rows, params.k_tiles,
      params.w2, aligned_shared_base(shared),
      [&](std::int64_t tile, TileOperands<Shape>& operands) {
        const BlockCoordinates block = grouped_tile(tile, row_blocks, column_blocks);
        gemm2_operands<Shape>(params, params.block_expert[block.row_block],
                              static_cast<std::int64_t>(block.row_block) * Shape::kBlockM,
                              static_cast<std::int64_t>(block.column_block) * Shape::kBlockN, operands);
      },
      [&](BlockCoordinates block, const float(&acc)[Shape::kAccumulators]) {
        gemm2_epilogue<Shape>(params, acc, static_cast<std::int64_t>(block.row_block) * Shape::kBlockM,
                              static_cast<std::int64_t>(block.column_block) * Shape::kBlockN, threadIdx.x);
      });
#elif defined(__CUDA_ARCH__)
  __trap();  // no wgmma in this device code: never write nothing silently (hosts check first)
#endif
}

}  // namespace fusedmoe::cuda_fused
