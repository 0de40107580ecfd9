// cuda_fused's two grouped GEMMs on bf16 tensor cores (mma.sync m16n8k16, sm_80+; runs on Hopper too):
//   GEMM1: rows of hidden gathered by sorted (token, slot) ids x w13 of the block's expert, with
//          act(gate) * up in the epilogue, written once in bf16 to the intermediate [rows, I_pad];
//   GEMM2: the intermediate x w2 of the block's expert, times the routing weight in fp32, written to the
//          per-(token, slot) rows [M * k, H_pitch] in bf16 (no atomics; a reduce kernel sums over k).
// One block = block_m sorted rows (all of one expert: the align step pads each expert to block_m) x
// block_n weight rows, a cp.async pipeline of `stages` shared-memory tiles, ldmatrix + mma.sync.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "backends/cuda_common/kernels/grid_dependency.cuh"
#include "backends/cuda_fused/kernels/l2_warm_up.cuh"
#include "backends/cuda_fused/kernels/launch.hpp"
#include "backends/cuda_fused/kernels/raster.hpp"
#include "backends/cuda_fused/kernels/weight_panels.cuh"

namespace fusedmoe::cuda_fused {

using bf16 = __nv_bfloat16;

template <int BlockM, int BlockN, int BlockK, int WarpsM, int WarpsN, int Stages>
struct GemmShape {
  static constexpr int kBlockM = BlockM, kBlockN = BlockN, kBlockK = BlockK, kStages = Stages;
  static constexpr int kWarpsM = WarpsM, kWarpsN = WarpsN;
  static constexpr int kThreads = 32 * WarpsM * WarpsN;
  static constexpr int kWarpM = BlockM / WarpsM, kWarpN = BlockN / WarpsN;
  static constexpr int kFragsM = kWarpM / 16, kFragsN = kWarpN / 8;
  static constexpr int kStageA = BlockM * BlockK, kStageB = BlockN * BlockK;  // elements, rows unpadded
  static constexpr int kSharedBytes = Stages * (kStageA + kStageB) * 2;
  static constexpr int kChunksPerRow = BlockK / 8;  // 16-byte cp.async chunks
  static constexpr int kChunksA = BlockM * kChunksPerRow / kThreads;
  static constexpr int kChunksB = BlockN * kChunksPerRow / kThreads;
  // Deeper than the weights' depth padding (64): the last stage's weight chunks past the padded row are
  // zero-filled instead of read.
  static constexpr bool kGuardWeightDepth = BlockK > 64;
  static_assert(BlockK == 32 || BlockK == 64 || BlockK == 128, "block_k: 32, 64 or 128");
  static_assert(kWarpM % 16 == 0, "a warp covers whole m16 fragments");
  static_assert(kWarpN % 32 == 0, "a warp covers whole 32-row gate/up groups of the converted w13");
  static_assert(kChunksA >= 1 && kChunksA * kThreads == BlockM * kChunksPerRow, "A tile must split evenly");
  static_assert(kChunksB >= 1 && kChunksB * kThreads == BlockN * kChunksPerRow, "B tile must split evenly");
  static_assert(Stages >= 2, "a pipeline needs two stages");

  // Byte offset of 16-byte chunk `chunk` of row `row` in a stage. The chunk index is XORed with the row so
  // that the 8 rows one ldmatrix reads (same logical chunk) land in 8 different 16-byte bank groups: no
  // padding and no bank conflicts. 64-byte rows (block_k 32) pair rows up, 128+ byte rows take row % 8.
  static __host__ __device__ constexpr unsigned swizzled(int row, int chunk) {
    const int pattern = kChunksPerRow >= 8 ? (row & 7) : ((row >> 1) & 3);
    return static_cast<unsigned>((row * kChunksPerRow + (chunk ^ pattern)) * 16);
  }
};

struct Gemm1Params {
  const bf16* hidden;  // A: [M, lda], rows 16-byte aligned
  std::int64_t lda;
  std::int64_t a_columns;  // columns of A holding data (multiple of 8); later ones read as zero
  const bf16* w13;  // converted: [E_local][2 I_pad][weight_depth] in k-panels, gate/up interleaved by 16 rows
  std::int64_t weight_depth;  // the padded depth: the columns of a weight row that may be read
  std::int64_t panel_stride;  // elements from one k-panel to the next (weight_panels.cuh)
  std::int64_t expert_stride;
  const std::int32_t* sorted_ids;    // [rows]: token * k + slot, or -1 (padding)
  const std::int32_t* block_expert;  // [blocks]: local expert, or -1 (unused block)
  int top_k;
  int k_tiles;
  // Let GEMM2 launch as soon as every block has passed its wait (grid_dependency.cuh): when the whole grid is
  // resident at once, or GEMM2's grid fills every SM slot (gemm1_triggers_early). Either way GEMM2's blocks
  // take only slots GEMM1 leaves free: it launches once all of GEMM1's blocks have started.
  bool trigger_dependents_early;
  bf16* intermediate;  // [rows, ldi]
  std::int64_t ldi;
  int activation;            // 0 = SiLU, 1 = GELU (erf)
  L2WarmUp warm;             // decode's L2 warm-up before the wait (l2_warm_up.cuh); panels == 0: none
  bool write_padding_warps;  // the warp-specialised TMA epilogue (Gemm1Launch::write_padding_warps)
  bool async_signal;         // Gemm1Launch::async_signal
  Raster raster;             // the warp-specialised tiles' order (raster.hpp)
};

struct Gemm2Params {
  const bf16* intermediate;  // A: [rows, lda]
  std::int64_t lda;
  const bf16* w2;  // converted: [E_local][H_pad][weight_depth] in k-panels
  std::int64_t weight_depth;
  std::int64_t panel_stride;
  std::int64_t expert_stride;
  const std::int32_t* sorted_ids;
  const std::int32_t* block_expert;
  const float* topk_weights;  // [M * k]
  int k_tiles;
  // As GEMM1's, for the reduce: triggered once the main loop has waited for GEMM1 (one wave only).
  bool trigger_dependents_early;
  bf16* out_rows;  // [M * k, ldo]
  std::int64_t ldo;
  std::int64_t out_columns;  // H
  bool async_signal;         // Gemm2Launch::async_signal
  Raster raster;             // as Gemm1Params'
};

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800

__device__ __forceinline__ unsigned shared_address(const void* pointer) {
  return static_cast<unsigned>(__cvta_generic_to_shared(pointer));
}

// 16 bytes global -> shared, zero-filled when !valid (then `source` is only a placeholder address).
__device__ __forceinline__ void cp_async_16(unsigned destination, const void* source, bool valid) {
  const int bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(destination), "l"(source), "r"(bytes));
}
// The mbarrier at `barrier` receives one arrival (counted in its init count) once every cp.async this thread
// issued before has landed; the thread does not wait.
__device__ __forceinline__ void cp_async_arrive_noinc(unsigned barrier) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(barrier) : "memory");
}
// Returns once every cp.async this thread issued has landed, committed to a group or not.
__device__ __forceinline__ void cp_async_wait_all() {
  asm volatile("cp.async.wait_all;\n" ::: "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int Pending>
__device__ __forceinline__ void cp_async_wait() {
  // "memory": shared-memory reads after the wait must not be moved above it (the streaming kernels read
  // their rings with no barrier in between).
  asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending) : "memory");
}

__device__ __forceinline__ void ldmatrix_x4(unsigned (&registers)[4], unsigned address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(registers[0]), "=r"(registers[1]), "=r"(registers[2]), "=r"(registers[3])
               : "r"(address));
}

__device__ __forceinline__ void mma_bf16_16816(float (&c)[4], const unsigned (&a)[4], unsigned b0,
                                               unsigned b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// acc += A . B^T over k_tiles * BlockK columns. This thread's A chunks come from a_source[i] (already
// offset by their column a_column[i]; nullptr = a padding row, read as zeros; columns >= a_columns read
// as zeros); its B chunks from weight row b_row[i] (its k-panel 0; in bounds: the weights are padded to 64 in
// depth; deeper tiles zero-fill columns >= b_columns, the weights' padded depth), b_panel_stride elements
// from one 64-deep panel to the next (weight_panels.cuh). Waits for the previous kernel (grid_dependency.cuh)
// after requesting the first weight stages, before the first A load, and then lets the next kernel launch
// when `trigger_after_wait`.
template <class Shape>
__device__ __forceinline__ void gemm_mainloop(float (&acc)[Shape::kFragsM][Shape::kFragsN][4],
                                              const bf16* const (&a_source)[Shape::kChunksA],
                                              const int (&a_column)[Shape::kChunksA], std::int64_t a_columns,
                                              const bf16* const (&b_row)[Shape::kChunksB],
                                              std::int64_t b_columns, std::int64_t b_panel_stride,
                                              int k_tiles, const void* placeholder, unsigned char* shared,
                                              bool trigger_after_wait) {
  const int thread = threadIdx.x, lane = thread % 32, warp = thread / 32;
  const int warp_m = warp / Shape::kWarpsN, warp_n = warp % Shape::kWarpsN;
  const unsigned shared_a = shared_address(shared);
  const unsigned shared_b = shared_a + Shape::kStages * Shape::kStageA * 2;

  unsigned a_offset[Shape::kChunksA], b_offset[Shape::kChunksB];  // bytes within a stage
#pragma unroll
  for (int i = 0; i < Shape::kChunksA; ++i) {
    const int chunk = thread + i * Shape::kThreads;
    a_offset[i] = Shape::swizzled(chunk / Shape::kChunksPerRow, chunk % Shape::kChunksPerRow);
  }
#pragma unroll
  for (int i = 0; i < Shape::kChunksB; ++i) {
    const int chunk = thread + i * Shape::kThreads;
    b_offset[i] = Shape::swizzled(chunk / Shape::kChunksPerRow, chunk % Shape::kChunksPerRow);
  }
  auto load_a = [&](int stage, int k_tile) {
    const std::int64_t k0 = static_cast<std::int64_t>(k_tile) * Shape::kBlockK;
#pragma unroll
    for (int i = 0; i < Shape::kChunksA; ++i) {
      const bool valid = a_source[i] != nullptr && k0 + a_column[i] < a_columns;
      cp_async_16(shared_a + stage * Shape::kStageA * 2 + a_offset[i], valid ? a_source[i] + k0 : placeholder,
                  valid);
    }
  };
  auto load_b = [&](int stage, int k_tile) {
    const std::int64_t k0 = static_cast<std::int64_t>(k_tile) * Shape::kBlockK;
#pragma unroll
    for (int i = 0; i < Shape::kChunksB; ++i) {
      const std::int64_t k = k0 + ((threadIdx.x + i * Shape::kThreads) % Shape::kChunksPerRow) * 8;
      bool valid = true;
      if constexpr (Shape::kGuardWeightDepth) valid = k < b_columns;
      cp_async_16(shared_b + stage * Shape::kStageB * 2 + b_offset[i],
                  valid ? b_row[i] + panel_offset(0, k, b_panel_stride) : placeholder, valid);
    }
  };

  // The weights do not depend on the previous kernel: their first stages are requested before waiting for
  // it (grid_dependency.cuh). They join the first commit group, so "tile 0 has landed" covers them.
#pragma unroll
  for (int stage = 0; stage < Shape::kStages - 1; ++stage) {
    if (stage < k_tiles) load_b(stage, stage);
  }
  cuda::wait_for_prior_grids();
  if (trigger_after_wait) cuda::allow_dependent_grids();
#pragma unroll
  for (int stage = 0; stage < Shape::kStages - 1; ++stage) {
    if (stage < k_tiles) load_a(stage, stage);
    cp_async_commit();
  }
  for (int k_tile = 0; k_tile < k_tiles; ++k_tile) {
    cp_async_wait<Shape::kStages - 2>();  // tile k_tile has landed (groups are committed every iteration)
    __syncthreads();                      // ... for every thread, and everyone is done with tile k_tile - 1
    const int next = k_tile + Shape::kStages - 1;
    if (next < k_tiles) {
      load_a(next % Shape::kStages, next);
      load_b(next % Shape::kStages, next);
    }
    cp_async_commit();

    const int stage = k_tile % Shape::kStages;
    const unsigned stage_a = shared_a + stage * Shape::kStageA * 2;
    const unsigned stage_b = shared_b + stage * Shape::kStageB * 2;
#pragma unroll
    for (int kk = 0; kk < Shape::kBlockK / 16; ++kk) {
      unsigned a_fragment[Shape::kFragsM][4];
      unsigned b_fragment[Shape::kFragsN][2];
#pragma unroll
      for (int fm = 0; fm < Shape::kFragsM; ++fm) {
        const int row = warp_m * Shape::kWarpM + fm * 16 + (lane & 15);
        ldmatrix_x4(a_fragment[fm], stage_a + Shape::swizzled(row, kk * 2 + (lane >> 4)));
      }
#pragma unroll
      for (int pair = 0; pair < Shape::kFragsN / 2; ++pair) {
        const int row = warp_n * Shape::kWarpN + pair * 16 + (lane & 7) + ((lane >> 4) << 3);
        unsigned registers[4];
        ldmatrix_x4(registers, stage_b + Shape::swizzled(row, kk * 2 + ((lane >> 3) & 1)));
        b_fragment[2 * pair][0] = registers[0];
        b_fragment[2 * pair][1] = registers[1];
        b_fragment[2 * pair + 1][0] = registers[2];
        b_fragment[2 * pair + 1][1] = registers[3];
      }
#pragma unroll
      for (int fm = 0; fm < Shape::kFragsM; ++fm) {
#pragma unroll
        for (int fn = 0; fn < Shape::kFragsN; ++fn) {
          mma_bf16_16816(acc[fm][fn], a_fragment[fm], b_fragment[fn][0], b_fragment[fn][1]);
        }
      }
    }
  }
  cp_async_wait<0>();
}

// SiLU with the fast exponential and division (ex2.approx and rcp.approx: a few instructions where expf and
// an IEEE division take ~25; a 128 x 256 GEMM1 tile's epilogue runs this 64 times per thread while the
// tensor cores wait). Their error, a few fp32 ulp, is far below the bf16 rounding of the result; every
// cuda_fused path shares this function, so the paths still agree bit for bit.
// kActivation: 0 = SiLU, 1 = GELU (erf). The tiled GEMM1 epilogues (mma.sync and wgmma) choose it once per
// row and take this form: a choice per element interleaved GELU's erf code with SiLU's, and the
// warp-specialised kernels ran 2-5% slower for it (bench/results/2026-11-29-h200-session30.md). The decode
// paths (stream, persistent), with a few values per thread, keep the runtime form below.
template <int kActivation>
__device__ __forceinline__ float gated_activation(float gate, float up) {
  const float act = kActivation == 0 ? __fdividef(gate, 1.0f + __expf(-gate))
                                     : 0.5f * gate * (1.0f + erff(gate * 0.70710678118654752f));
  return act * up;
}
__device__ __forceinline__ float gated_activation(float gate, float up, int activation) {
  return activation == 0 ? gated_activation<0>(gate, up) : gated_activation<1>(gate, up);
}
// Runs body.template operator()<kActivation>() with the runtime activation as a compile-time constant: the
// tiled GEMM1 epilogues wrap the code for one row (or one half tile) in it, so the choice is made once there.
template <class Body>
__device__ __forceinline__ void with_activation(int activation, Body&& body) {
  if (activation == 0) {
    body.template operator()<0>();
  } else {
    body.template operator()<1>();
  }
}

#endif  // __CUDA_ARCH__ >= 800

template <class Shape>
__global__ void __launch_bounds__(Shape::kThreads) gemm1_gate_up_kernel(Gemm1Params params) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if (params.warm.panels > 0 && threadIdx.x < 32) {  // while the align step may still run
    warm_up_weights(params.warm, params.w13, params.expert_stride, params.panel_stride,
                    static_cast<std::int64_t>(blockIdx.y) * Shape::kBlockN, Shape::kBlockN);
  }
  cuda::wait_for_prior_grids();  // the align step wrote block_expert and sorted_ids
  if (params.trigger_dependents_early) cuda::allow_dependent_grids();
  const int expert = params.block_expert[blockIdx.x];
  if (expert < 0) return;  // beyond the padded rows actually used
  extern __shared__ __align__(128) unsigned char shared[];
  const int thread = threadIdx.x, lane = thread % 32, warp = thread / 32;
  const int warp_m = warp / Shape::kWarpsN, warp_n = warp % Shape::kWarpsN;
  const std::int64_t row0 = static_cast<std::int64_t>(blockIdx.x) * Shape::kBlockM;
  const std::int64_t n0 = static_cast<std::int64_t>(blockIdx.y) * Shape::kBlockN;  // converted w13 row

  const bf16* a_source[Shape::kChunksA];
  int a_column[Shape::kChunksA];
#pragma unroll
  for (int i = 0; i < Shape::kChunksA; ++i) {
    const int chunk = thread + i * Shape::kThreads;
    const int row = chunk / Shape::kChunksPerRow;
    a_column[i] = (chunk % Shape::kChunksPerRow) * 8;
    const std::int32_t pair = params.sorted_ids[row0 + row];
    a_source[i] =
        pair >= 0 ? params.hidden + static_cast<std::int64_t>(pair / params.top_k) * params.lda + a_column[i]
                  : nullptr;
  }
  const bf16* b_row[Shape::kChunksB];
  const bf16* weights = params.w13 + static_cast<std::int64_t>(expert) * params.expert_stride;
#pragma unroll
  for (int i = 0; i < Shape::kChunksB; ++i) {
    b_row[i] = weights + panel_offset(n0 + (thread + i * Shape::kThreads) / Shape::kChunksPerRow, 0,
                                      params.panel_stride);
  }
  float acc[Shape::kFragsM][Shape::kFragsN][4] = {};
  gemm_mainloop<Shape>(acc, a_source, a_column, params.a_columns, b_row, params.weight_depth,
                       params.panel_stride, params.k_tiles, params.w13, shared, false);

  // Fragment fn of a 32-row group holds gate columns when fn % 4 < 2; fn + 2 holds the matching up columns
  // in the same registers of the same thread. Padding rows are not written: GEMM2 reads them as zeros.
  const std::int64_t group0 = (n0 + warp_n * Shape::kWarpN) / 32;
#pragma unroll
  for (int fm = 0; fm < Shape::kFragsM; ++fm) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const std::int64_t row = row0 + warp_m * Shape::kWarpM + fm * 16 + lane / 4 + half * 8;
      if (params.sorted_ids[row] < 0) continue;
      bf16* out_row = params.intermediate + row * params.ldi;
      // The activation chosen once per row, not per element (see gated_activation<>).
      with_activation(params.activation, [&]<int kActivation>() {
#pragma unroll
        for (int fn = 0; fn < Shape::kFragsN; ++fn) {
          if ((fn & 3) >= 2) continue;
          const std::int64_t column = 16 * (group0 + fn / 4) + 8 * (fn & 3) + 2 * (lane & 3);
          const float v0 = gated_activation<kActivation>(acc[fm][fn][2 * half], acc[fm][fn + 2][2 * half]);
          const float v1 =
              gated_activation<kActivation>(acc[fm][fn][2 * half + 1], acc[fm][fn + 2][2 * half + 1]);
          *reinterpret_cast<__nv_bfloat162*>(out_row + column) = __floats2bfloat162_rn(v0, v1);
        }
      });
    }
  }
#endif
}

template <class Shape>
__global__ void __launch_bounds__(Shape::kThreads) gemm2_down_kernel(Gemm2Params params) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  // block_expert comes from the kernel before GEMM1 (complete once GEMM1 let this grid launch), so it is read
  // before waiting; the intermediate from GEMM1 only after the main loop's wait.
  const int expert = params.block_expert[blockIdx.x];
  if (expert < 0) return;
  extern __shared__ __align__(128) unsigned char shared[];
  const int thread = threadIdx.x, lane = thread % 32, warp = thread / 32;
  const int warp_m = warp / Shape::kWarpsN, warp_n = warp % Shape::kWarpsN;
  const std::int64_t row0 = static_cast<std::int64_t>(blockIdx.x) * Shape::kBlockM;
  const std::int64_t n0 = static_cast<std::int64_t>(blockIdx.y) * Shape::kBlockN;  // output column

  // Padding rows (sorted id -1, written by the align step before GEMM1, so readable before the wait) are
  // zero-filled rather than read: at decode most of a 16-row block is padding, and every column block would
  // re-read those rows of the intermediate.
  const bf16* a_source[Shape::kChunksA];
  int a_column[Shape::kChunksA];
#pragma unroll
  for (int i = 0; i < Shape::kChunksA; ++i) {
    const int chunk = thread + i * Shape::kThreads;
    const std::int64_t row = row0 + chunk / Shape::kChunksPerRow;
    a_column[i] = (chunk % Shape::kChunksPerRow) * 8;
    a_source[i] =
        params.sorted_ids[row] >= 0 ? params.intermediate + row * params.lda + a_column[i] : nullptr;
  }
  const bf16* b_row[Shape::kChunksB];
  const bf16* weights = params.w2 + static_cast<std::int64_t>(expert) * params.expert_stride;
#pragma unroll
  for (int i = 0; i < Shape::kChunksB; ++i) {
    b_row[i] = weights + panel_offset(n0 + (thread + i * Shape::kThreads) / Shape::kChunksPerRow, 0,
                                      params.panel_stride);
  }
  float acc[Shape::kFragsM][Shape::kFragsN][4] = {};
  gemm_mainloop<Shape>(acc, a_source, a_column, params.lda, b_row, params.weight_depth, params.panel_stride,
                       params.k_tiles, params.w2, shared, params.trigger_dependents_early);

#pragma unroll
  for (int fm = 0; fm < Shape::kFragsM; ++fm) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const std::int64_t row = row0 + warp_m * Shape::kWarpM + fm * 16 + lane / 4 + half * 8;
      const std::int32_t pair = params.sorted_ids[row];
      if (pair < 0) continue;  // a padding row
      const float weight = params.topk_weights[pair];
      bf16* out_row = params.out_rows + static_cast<std::int64_t>(pair) * params.ldo;
#pragma unroll
      for (int fn = 0; fn < Shape::kFragsN; ++fn) {
        const std::int64_t column = n0 + warp_n * Shape::kWarpN + fn * 8 + 2 * (lane & 3);
        // column + 1 < ldo whenever column < H: the pitch is H rounded up to 8.
        if (column < params.out_columns) {
          *reinterpret_cast<__nv_bfloat162*>(out_row + column) =
              __floats2bfloat162_rn(weight * acc[fm][fn][2 * half], weight * acc[fm][fn][2 * half + 1]);
        }
      }
    }
  }
#endif
}

}  // namespace fusedmoe::cuda_fused
