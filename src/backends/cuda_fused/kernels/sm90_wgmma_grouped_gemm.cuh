// cuda_fused's two grouped GEMMs on Hopper's warpgroup tensor cores (wgmma, sm_90a only): the same
// contract as the mma.sync kernels of sm80_bf16_grouped_gemm.cuh (gathered A rows, act(gate) * up in GEMM1's
// epilogue, the routing weight in GEMM2's), a different main loop:
//   - one block = 64 * kWarpGroups sorted rows (all of one expert) x kBlockN weight rows; each warpgroup owns
//     64 rows x kBlockN columns and issues wgmma.m64n{kBlockN}k16 with both operands in shared memory;
//   - every thread streams 16-byte chunks with cp.async (A rows are gathered by sorted id, so TMA's boxes do
//   not
//     fit) into tiles of 64 bf16 (128 bytes) per row, stored in the 128-byte swizzle wgmma reads (chunk c of
//     row r at chunk position c ^ (r % 8); tiles 1024-byte aligned), kStages deep with kStages - 2 tiles in
//     flight: the stage being refilled was read by the wgmma group two iterations back, which every warpgroup
//     has retired (wgmma.wait_group 1) before the barrier that precedes the refill.
// Accumulators follow wgmma's D layout: per warp 16 rows; register 4j + q holds row lane / 4 + 8 (q / 2),
// column 8j + 2 (lane % 4) + q % 2 (the mma.sync m16n8 layout repeated over kBlockN / 8 column groups), so
// the epilogues are those of the mma.sync kernels.
#pragma once

#include <cstdint>

#include "backends/cuda_fused/kernels/raster.hpp"
#include "backends/cuda_fused/kernels/sm80_bf16_grouped_gemm.cuh"
#include "backends/cuda_fused/kernels/sm90_wgmma_ops.cuh"

namespace fusedmoe::cuda_fused {

template <int WarpGroups, int BlockN, int Stages>
struct WgmmaShape {
  static constexpr int kWarpGroups = WarpGroups, kBlockN = BlockN, kStages = Stages;
  static constexpr int kBlockM = 64 * WarpGroups, kBlockK = 64;  // 64 bf16 = one 128-byte swizzle row
  static constexpr int kClusterM = 1;                            // one-tile-per-block kernels: no clusters
  static constexpr int kThreads = 128 * WarpGroups;
  static constexpr int kRowBytes = 128;
  static constexpr int kStageABytes = kBlockM * kRowBytes, kStageBBytes = kBlockN * kRowBytes;
  static constexpr int kStageBytes = kStageABytes + kStageBBytes;
  static constexpr int kSharedBytes = Stages * kStageBytes + 1024;  // + slack to align the tiles to 1024
  static constexpr int kChunksA = kBlockM * 8 / kThreads;           // 16-byte chunks per thread and stage
  static constexpr int kChunksB = kBlockN * 8 / kThreads;
  static constexpr int kRowsPerPass = kThreads / 8;  // rows one pass of all threads' chunks covers
  static constexpr int kAccumulators = BlockN / 2;   // fp32 per thread: 64 x BlockN over 128 threads
  static_assert(BlockN == 128 || BlockN == 256, "wgmma shapes instantiated: n128, n256");
  static_assert(Stages >= 3, "two stages are in use by wgmma while a third is refilled");
  static_assert(kStageABytes % 1024 == 0 && kStageBBytes % 1024 == 0, "swizzled tiles stay 1024-aligned");
};

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)

// A shared-memory matrix descriptor: K-major, 128-byte swizzle, 8-row core groups 1024 bytes apart.
__device__ __forceinline__ std::uint64_t smem_descriptor(unsigned address) {
  return static_cast<std::uint64_t>((address & 0x3FFFF) >> 4) |  // start address / 16
         (static_cast<std::uint64_t>(1) << 16) |                 // leading byte offset (unused when swizzled)
         (static_cast<std::uint64_t>(1024 >> 4) << 32) |         // stride byte offset: 8 rows x 128 bytes
         (static_cast<std::uint64_t>(1) << 62);                  // swizzle mode: 128 bytes
}

__device__ __forceinline__ void wgmma_fence() {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wgmma_commit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int Pending>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(Pending) : "memory");
}
// cp.async wrote through the generic proxy; wgmma reads through the async proxy.
__device__ __forceinline__ void fence_async_shared() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
// Keeps the compiler from moving accumulator reads or writes across the asynchronous wgmma region.
template <int N>
__device__ __forceinline__ void fence_accumulators(float (&acc)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(acc[i])::"memory");
}

// Which (row block, column block) this block computes. The hardware starts blocks in launch order (x
// fastest); taken plainly, every column block would sweep all row blocks, so the gathered A rows (and
// GEMM2's whole intermediate) would stream from DRAM once per column block at prefill sizes. Instead
// consecutive blocks cover all column blocks of kRasterRows row blocks before moving on (raster.hpp).
__device__ __forceinline__ BlockCoordinates grouped_block_coordinates() {
  return grouped_tile<std::int64_t>(static_cast<std::int64_t>(blockIdx.y) * gridDim.x + blockIdx.x, gridDim.x,
                                    gridDim.y);
}

template <class Shape>
__device__ __forceinline__ void wgmma_tile(float (&acc)[Shape::kAccumulators], std::uint64_t a,
                                           std::uint64_t b) {
  if constexpr (Shape::kBlockN == 128) {
    wgmma_m64n128k16(acc, a, b);
  } else if constexpr (Shape::kBlockN == 192) {
    wgmma_m64n192k16(acc, a, b);
  } else {
    wgmma_m64n256k16(acc, a, b);
  }
}

// One k-tile (64 deep) of this warpgroup's MMAs from the stage at descriptors a and b, issued
// asynchronously; returns once the previous k-tile's group has retired (its stage may be refilled) while this
// one is still in flight.
template <class Shape>
__device__ __forceinline__ void wgmma_k_tile(float (&acc)[Shape::kAccumulators], std::uint64_t a,
                                             std::uint64_t b) {
  fence_accumulators(acc);
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < Shape::kBlockK / 16; ++kk) {
    // 16 bf16 = 32 bytes further along K inside the swizzle row: + 2 in the descriptor's 16-byte units.
    wgmma_tile<Shape>(acc, a + 2 * kk, b + 2 * kk);
  }
  wgmma_commit();
  wgmma_wait<1>();
  fence_accumulators(acc);
}

// acc += A . B^T over k_tiles * 64 columns. A chunk i of this thread is row (thread / 8 + i * kRowsPerPass),
// column (thread % 8) * 8 of the tile: a_source[i] is that row already offset by the column (nullptr = a
// padding row, zeros; columns >= a_columns read as zeros). B chunk i is b_row0 (this thread's first weight
// row and column in k-panel 0) + i * kRowsPerPass rows further, and k-tile t is t panels (b_panel_stride
// elements each, weight_panels.cuh) further; rows at or past b_rows read as zeros (the last column block may
// overhang the weights' padding).
template <class Shape>
__device__ __forceinline__ void wgmma_mainloop(float (&acc)[Shape::kAccumulators],
                                               const bf16* const (&a_source)[Shape::kChunksA],
                                               std::int64_t a_columns, const bf16* b_row0,
                                               std::int64_t b_panel_stride, std::int64_t b_first_row,
                                               std::int64_t b_rows, int k_tiles, const void* placeholder,
                                               unsigned shared) {
  const int thread = threadIdx.x, warpgroup = thread / 128;
  const int chunk = thread % 8, row_in_pass = thread / 8;
  const int column = chunk * 8;
  // Swizzled byte offset of this thread's chunk in row r: the 16-byte chunk moves to c ^ (r % 8).
  auto swizzled = [&](int row) { return row * Shape::kRowBytes + ((chunk ^ (row & 7)) << 4); };

  auto load_a = [&](int stage, int k_tile) {
    const std::int64_t k0 = static_cast<std::int64_t>(k_tile) * Shape::kBlockK;
    const unsigned stage_a = shared + stage * Shape::kStageBytes;
#pragma unroll
    for (int i = 0; i < Shape::kChunksA; ++i) {
      const bool valid = a_source[i] != nullptr && k0 + column < a_columns;
      cp_async_16(stage_a + swizzled(row_in_pass + i * Shape::kRowsPerPass),
                  valid ? a_source[i] + k0 : placeholder, valid);
    }
  };
  static_assert(Shape::kBlockK == kPanelDepth, "a k-tile is one k-panel of the weights");
  auto load_b = [&](int stage, int k_tile) {
    const bf16* panel = b_row0 + static_cast<std::int64_t>(k_tile) * b_panel_stride;
    const unsigned stage_b = shared + stage * Shape::kStageBytes + Shape::kStageABytes;
#pragma unroll
    for (int i = 0; i < Shape::kChunksB; ++i) {
      const int row = row_in_pass + i * Shape::kRowsPerPass;
      const bool valid = b_first_row + i * Shape::kRowsPerPass < b_rows;  // b_first_row: this thread's row 0
      cp_async_16(
          stage_b + swizzled(row),
          valid ? panel + static_cast<std::int64_t>(i) * Shape::kRowsPerPass * kPanelDepth : placeholder,
          valid);
    }
  };

  constexpr int kAhead = Shape::kStages - 2;  // tiles in flight beyond the one being multiplied
  // As in gemm_mainloop: the first weight stages before waiting for the previous kernel, in the first group.
#pragma unroll
  for (int stage = 0; stage < kAhead; ++stage) {
    if (stage < k_tiles) load_b(stage, stage);
  }
  cuda::wait_for_prior_grids();
#pragma unroll
  for (int stage = 0; stage < kAhead; ++stage) {
    if (stage < k_tiles) load_a(stage, stage);
    cp_async_commit();
  }
  for (int k_tile = 0; k_tile < k_tiles; ++k_tile) {
    cp_async_wait<kAhead - 1>();  // this thread's chunks of tile k_tile have landed
    fence_async_shared();         // ... and are visible to wgmma's proxy
    __syncthreads();              // every thread's chunks; every warpgroup retired wgmma group k_tile - 2
    const int next = k_tile + kAhead;
    if (next < k_tiles) {
      load_a(next % Shape::kStages, next);
      load_b(next % Shape::kStages, next);
    }
    cp_async_commit();

    const unsigned stage_a = shared + (k_tile % Shape::kStages) * Shape::kStageBytes;
    const std::uint64_t a_descriptor = smem_descriptor(stage_a + warpgroup * 64 * Shape::kRowBytes);
    wgmma_k_tile<Shape>(acc, a_descriptor, smem_descriptor(stage_a + Shape::kStageABytes));
  }
  wgmma_wait<0>();
  fence_accumulators(acc);
  cp_async_wait<0>();
}

__device__ __forceinline__ unsigned aligned_shared_base(unsigned char* shared) {
  return (shared_address(shared) + 1023u) & ~1023u;
}

#endif  // sm_90a

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)

// What one tile of a GEMM streams: this thread's A chunks (a_source, see wgmma_mainloop) and its first B row.
template <class Shape>
struct TileOperands {
  const bf16* a_source[Shape::kChunksA];
  const bf16* b_row0;
  std::int64_t b_first_row;
};

// GEMM1's operands for the tile at (row0, n0) of `expert`: A rows gathered from hidden by sorted id.
template <class Shape>
__device__ __forceinline__ void gemm1_operands(const Gemm1Params& params, int expert, std::int64_t row0,
                                               std::int64_t n0, TileOperands<Shape>& operands) {
  const int thread = threadIdx.x, column = (thread % 8) * 8;
#pragma unroll
  for (int i = 0; i < Shape::kChunksA; ++i) {
    const std::int32_t pair = params.sorted_ids[row0 + thread / 8 + i * Shape::kRowsPerPass];
    operands.a_source[i] =
        pair >= 0 ? params.hidden + static_cast<std::int64_t>(pair / params.top_k) * params.lda + column
                  : nullptr;
  }
  operands.b_first_row = n0 + thread / 8;
  operands.b_row0 = params.w13 + static_cast<std::int64_t>(expert) * params.expert_stride +
                    panel_offset(operands.b_first_row, column, params.panel_stride);
}

// GEMM2's operands: A rows of the intermediate; padding rows (sorted id -1, from the align step before GEMM1)
// read as zeros, as in gemm2_down_kernel.
template <class Shape>
__device__ __forceinline__ void gemm2_operands(const Gemm2Params& params, int expert, std::int64_t row0,
                                               std::int64_t n0, TileOperands<Shape>& operands) {
  const int thread = threadIdx.x, column = (thread % 8) * 8;
#pragma unroll
  for (int i = 0; i < Shape::kChunksA; ++i) {
    const std::int64_t row = row0 + thread / 8 + i * Shape::kRowsPerPass;
    operands.a_source[i] =
        params.sorted_ids[row] >= 0 ? params.intermediate + row * params.lda + column : nullptr;
  }
  operands.b_first_row = n0 + thread / 8;
  operands.b_row0 = params.w2 + static_cast<std::int64_t>(expert) * params.expert_stride +
                    panel_offset(operands.b_first_row, column, params.panel_stride);
}

// Column group j (8 columns) of a 32-row gate/up group holds gate values when j % 4 < 2; group j + 2 holds
// the matching up values in the same registers of the same thread. Padding rows are not written. `thread`
// counts the block's MMA threads (warpgroup w's hold rows 64 w ..).
template <class Shape>
__device__ __forceinline__ void gemm1_epilogue(const Gemm1Params& params,
                                               const float (&acc)[Shape::kAccumulators], std::int64_t row0,
                                               std::int64_t n0, int thread) {
  const int lane = thread % 32, warp = thread / 32;
  const std::int64_t group0 = n0 / 32;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const std::int64_t row = row0 + warp * 16 + lane / 4 + half * 8;  // warp = 4 * warpgroup + warp in group
    if (params.sorted_ids[row] < 0) continue;  // a padding row: GEMM2 reads it as zeros
    bf16* out_row = params.intermediate + row * params.ldi;
    // The activation chosen once per row, not per element (see gated_activation<>).
    with_activation(params.activation, [&]<int kActivation>() {
#pragma unroll
      for (int j = 0; j < Shape::kBlockN / 8; ++j) {
        if ((j & 3) >= 2) continue;
        const std::int64_t column_out = 16 * (group0 + j / 4) + 8 * (j & 3) + 2 * (lane & 3);
        if (column_out >= params.ldi) continue;  // a column block overhanging 2 I_pad
        const float v0 = gated_activation<kActivation>(acc[4 * j + 2 * half], acc[4 * (j + 2) + 2 * half]);
        const float v1 =
            gated_activation<kActivation>(acc[4 * j + 2 * half + 1], acc[4 * (j + 2) + 2 * half + 1]);
        *reinterpret_cast<__nv_bfloat162*>(out_row + column_out) = __floats2bfloat162_rn(v0, v1);
      }
    });
  }
}

// A 4 x 4 transpose of 32-bit words across the four lanes of a quad (q = lane % 4): lane q's word i becomes
// lane i's word q. Two exchanges, with lane q ^ 2 (the words whose index differs from q in bit 1) and then
// with lane q ^ 1 (bit 0). Every lane of the warp must call it.
__device__ __forceinline__ void quad_transpose(unsigned (&w)[4], int q) {
  constexpr unsigned kAll = 0xffffffffu;
  const bool high = (q & 2) != 0, odd = (q & 1) != 0;
  const unsigned a = __shfl_xor_sync(kAll, high ? w[0] : w[2], 2);
  const unsigned b = __shfl_xor_sync(kAll, high ? w[1] : w[3], 2);
  if (high) {
    w[0] = a;
    w[1] = b;
  } else {
    w[2] = a;
    w[3] = b;
  }
  const unsigned c = __shfl_xor_sync(kAll, odd ? w[0] : w[1], 1);
  const unsigned d = __shfl_xor_sync(kAll, odd ? w[2] : w[3], 1);
  if (odd) {
    w[0] = c;
    w[2] = d;
  } else {
    w[1] = c;
    w[3] = d;
  }
}

// The routing weight times the accumulators, as bf16, into the pair's output row: half h of this thread's
// rows (row lane / 4 + 8 h of its warp's 16) belongs to pair[h] (-1: a padding row) with weight[h]. A quad of
// lanes holds 32 consecutive columns of a row (8 per column group j, 2 per lane): transposed across the
// quad, each lane holds one group's 8 columns and stores them as 16 bytes (a quarter of the stores, whole
// 32-byte sectors).
template <class Shape>
__device__ __forceinline__ void gemm2_store_rows(const Gemm2Params& params,
                                                 const float (&acc)[Shape::kAccumulators],
                                                 const std::int32_t (&pair)[2], const float (&weight)[2],
                                                 std::int64_t n0, int thread) {
  const int q = thread & 3;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    bf16* out_row =
        params.out_rows + static_cast<std::int64_t>(pair[half] >= 0 ? pair[half] : 0) * params.ldo;
#pragma unroll
    for (int j0 = 0; j0 < Shape::kBlockN / 8; j0 += 4) {
      unsigned words[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const __nv_bfloat162 packed = __floats2bfloat162_rn(weight[half] * acc[4 * (j0 + i) + 2 * half],
                                                            weight[half] * acc[4 * (j0 + i) + 2 * half + 1]);
        words[i] = *reinterpret_cast<const unsigned*>(&packed);
      }
      quad_transpose(words, q);  // every lane, padding rows' too
      // Columns column_out .. + 7 stay inside the row's pitch (H rounded up to 8) whenever column_out < H.
      const std::int64_t column_out = n0 + 8 * (j0 + q);
      if (pair[half] >= 0 && column_out < params.out_columns) {
        *reinterpret_cast<uint4*>(out_row + column_out) = make_uint4(words[0], words[1], words[2], words[3]);
      }
    }
  }
}

template <class Shape>
__device__ __forceinline__ void gemm2_epilogue(const Gemm2Params& params,
                                               const float (&acc)[Shape::kAccumulators], std::int64_t row0,
                                               std::int64_t n0, int thread) {
  const int lane = thread % 32, warp = thread / 32;
  std::int32_t pair[2];
  float weight[2];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    pair[half] = params.sorted_ids[row0 + warp * 16 + lane / 4 + half * 8];
    weight[half] = pair[half] >= 0 ? params.topk_weights[pair[half]] : 0.0f;
  }
  gemm2_store_rows<Shape>(params, acc, pair, weight, n0, thread);
}

#endif  // sm_90a

template <class Shape>
__global__ void __launch_bounds__(Shape::kThreads)
    wgmma_gemm1_gate_up_kernel(Gemm1Params params, std::int64_t w13_rows) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  cuda::wait_for_prior_grids();  // the align step wrote block_expert and sorted_ids
  // GEMM2 fills a wave (wgmma_gemm1_triggers_early): its blocks may start in the slots this grid frees.
  if (params.trigger_dependents_early) cuda::allow_dependent_grids();
  const BlockCoordinates block = grouped_block_coordinates();
  const int expert = params.block_expert[block.row_block];
  if (expert < 0) return;  // beyond the padded rows actually used
  extern __shared__ __align__(1024) unsigned char shared[];
  const std::int64_t row0 = static_cast<std::int64_t>(block.row_block) * Shape::kBlockM;
  const std::int64_t n0 = static_cast<std::int64_t>(block.column_block) * Shape::kBlockN;  // w13 row
  TileOperands<Shape> operands;
  gemm1_operands<Shape>(params, expert, row0, n0, operands);
  float acc[Shape::kAccumulators] = {};
  wgmma_mainloop<Shape>(acc, operands.a_source, params.a_columns, operands.b_row0, params.panel_stride,
                        operands.b_first_row, w13_rows, params.k_tiles, params.w13,
                        aligned_shared_base(shared));
  gemm1_epilogue<Shape>(params, acc, row0, n0, threadIdx.x);
#elif defined(__CUDA_ARCH__)
  __trap();  // no wgmma in this device code: never write nothing silently (hosts check first)
#endif
}

template <class Shape>
__global__ void __launch_bounds__(Shape::kThreads)
    wgmma_gemm2_down_kernel(Gemm2Params params, std::int64_t w2_rows) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  // As in gemm2_down_kernel: block_expert and sorted_ids before waiting for GEMM1, the intermediate after.
  const BlockCoordinates block = grouped_block_coordinates();
  const int expert = params.block_expert[block.row_block];
  if (expert < 0) return;
  extern __shared__ __align__(1024) unsigned char shared[];
  const std::int64_t row0 = static_cast<std::int64_t>(block.row_block) * Shape::kBlockM;
  const std::int64_t n0 = static_cast<std::int64_t>(block.column_block) * Shape::kBlockN;  // output column
  TileOperands<Shape> operands;
  gemm2_operands<Shape>(params, expert, row0, n0, operands);
  float acc[Shape::kAccumulators] = {};
  wgmma_mainloop<Shape>(acc, operands.a_source, params.lda, operands.b_row0, params.panel_stride,
                        operands.b_first_row, w2_rows, params.k_tiles, params.w2,
                        aligned_shared_base(shared));
  gemm2_epilogue<Shape>(params, acc, row0, n0, threadIdx.x);
#elif defined(__CUDA_ARCH__)
  __trap();  // no wgmma in this device code: never write nothing silently (hosts check first)
#endif
}

}  // namespace fusedmoe::cuda_fused
