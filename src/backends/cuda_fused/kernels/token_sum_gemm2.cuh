// cuda_fused's token-summed GEMM2 for decode batches (mma.sync, sm_80+): one block per (token, 16 output
// columns) walks the token's local top-k slots in slot order, each slot's intermediate row times its
// expert's w2 rows, and adds routing weight x product in fp32, so it writes the token's final output row
// itself: no per-slot rows and no reduce launch after it (the reduce cost 2-3.5 us of a 30-290 us decode
// forward on an H200, bench/results/2026-11-28-h200-session22.md).
//
// One warp per block. The weights stream through a ring of kTokenSumStages stages of 16 rows x 128 deep
// (4 KiB), requested by cp.async across the slot boundaries without a break; the first stages go out before
// waiting for GEMM1 (they depend only on the routing, which the align step, complete by then, resolved). The
// token's intermediate rows (all slots) are loaded once after the wait. The mma's A side is the one
// intermediate row repeated on all 16 rows (only row 0 of the result is read).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "backends/cuda_common/kernels/grid_dependency.cuh"
#include "backends/cuda_fused/kernels/sm80_bf16_grouped_gemm.cuh"
#include "backends/cuda_fused/kernels/weight_panels.cuh"

namespace fusedmoe::cuda_fused {

inline constexpr int kTokenSumColumns = 16;  // output columns per block
inline constexpr int kTokenSumDepth = 128;   // weight depth per stage
inline constexpr int kTokenSumStages = 16;   // 64 KiB of weights requested ahead per block
inline constexpr int kTokenSumMaxSlots = 32;
inline constexpr int kTokenSumStageBytes = kTokenSumColumns * kTokenSumDepth * 2;
inline constexpr int kTokenSumRingBytes = kTokenSumStages * kTokenSumStageBytes;

struct TokenSumParams {
  const std::int32_t* topk_ids;        // [M * k] global ids
  const std::int32_t* expert_map;      // [E] global -> local, -1 = not here; nullptr = identity
  const std::int32_t* pair_positions;  // [M * k]: the sorted row of each local pair (the align step's)
  const float* topk_weights;           // [M * k]
  int num_experts;
  int num_local_experts;
  int top_k;
  const bf16* intermediate;  // [rows, ldi]: GEMM1's rows in sorted order
  std::int64_t ldi;          // I_pad, a multiple of 64
  const bf16* w2;            // converted [E_local][H_n][I_pad] in k-panels (weight_panels.cuh)
  std::int64_t panel_stride;
  std::int64_t expert_stride;
  bf16* out;  // [M, hidden]
  std::int64_t hidden;
};

// Dynamic shared memory: the ring, then the token's intermediate rows [local slots][ldi], then the slot
// table.
inline constexpr std::int64_t token_sum_shared_bytes(int top_k, std::int64_t ldi) {
  return kTokenSumRingBytes + static_cast<std::int64_t>(top_k) * ldi * 2 + 3 * 4 * kTokenSumMaxSlots;
}

__global__ void __launch_bounds__(32) token_sum_gemm2_kernel(TokenSumParams params) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  extern __shared__ __align__(128) unsigned char shared[];
  __shared__ int slot_count;
  const int lane = threadIdx.x;
  const std::int64_t token = blockIdx.x;
  const std::int64_t n0 = static_cast<std::int64_t>(blockIdx.y) * kTokenSumColumns;
  const int top_k = params.top_k;
  bf16* a_rows = reinterpret_cast<bf16*>(shared + kTokenSumRingBytes);
  int* slot_expert = reinterpret_cast<int*>(shared + kTokenSumRingBytes + top_k * params.ldi * 2);
  int* slot_row = slot_expert + kTokenSumMaxSlots;
  float* slot_weight = reinterpret_cast<float*>(slot_row + kTokenSumMaxSlots);

  // The token's local slots, in slot order (ids, map and positions come from before GEMM1: readable now).
  if (lane == 0) {
    int count = 0;
    for (int slot = 0; slot < top_k; ++slot) {
      const std::int64_t pair = token * top_k + slot;
      const std::int32_t id = params.topk_ids[pair];
      if (id < 0 || id >= params.num_experts) continue;
      const std::int32_t local = params.expert_map != nullptr ? params.expert_map[id] : id;
      if (local < 0 || local >= params.num_local_experts) continue;
      slot_expert[count] = local;
      slot_row[count] = params.pair_positions[pair];
      slot_weight[count] = params.topk_weights[pair];
      ++count;
    }
    slot_count = count;
  }
  __syncwarp();
  const int slots = slot_count;
  const int k_tiles = static_cast<int>((params.ldi + kTokenSumDepth - 1) / kTokenSumDepth);
  const int tiles = slots * k_tiles;

  // Stage s holds 16 weight rows of 256 bytes (16 chunks), chunk c of row r at r * 256 + ((c ^ (r & 7)) *
  // 16).
  const unsigned ring = shared_address(shared);
  auto load_tile = [&](int tile) {
    const int slot = tile / k_tiles, k_tile = tile % k_tiles;
    const bf16* weights = params.w2 + static_cast<std::int64_t>(slot_expert[slot]) * params.expert_stride;
    const unsigned stage = ring + (tile % kTokenSumStages) * kTokenSumStageBytes;
#pragma unroll
    for (int i = 0; i < kTokenSumColumns * 16 / 32; ++i) {
      const int chunk = lane + i * 32, row = chunk / 16, column_chunk = chunk % 16;
      const std::int64_t k = static_cast<std::int64_t>(k_tile) * kTokenSumDepth + column_chunk * 8;
      const bool valid = k < params.ldi;  // the depth is padded to 64, not to 128
      cp_async_16(stage + row * 256 + ((column_chunk ^ (row & 7)) * 16),
                  valid ? weights + panel_offset(n0 + row, k, params.panel_stride) : params.w2, valid);
    }
  };
#pragma unroll 1
  for (int tile = 0; tile < kTokenSumStages - 1; ++tile) {
    if (tile < tiles) load_tile(tile);
    cp_async_commit();
  }
  cuda::wait_for_prior_grids();  // GEMM1 wrote the intermediate rows
  // The slots' intermediate rows, whole: their own commit group, waited for with everything below.
  const int chunks_per_row = static_cast<int>(params.ldi / 8);
  for (int chunk = lane; chunk < slots * chunks_per_row; chunk += 32) {
    const int slot = chunk / chunks_per_row, column = (chunk % chunks_per_row) * 8;
    cp_async_16(shared_address(a_rows + static_cast<std::int64_t>(slot) * params.ldi + column),
                params.intermediate + static_cast<std::int64_t>(slot_row[slot]) * params.ldi + column, true);
  }
  cp_async_commit();
  cp_async_wait<0>();
  __syncwarp();

  float acc[2][4] = {}, total[2][2] = {};
  const int quad = lane % 4;
#pragma unroll 1
  for (int tile = 0; tile < tiles; ++tile) {
    cp_async_wait<kTokenSumStages - 2>();  // tile `tile` has landed (a group is committed every iteration)
    __syncwarp();                          // ... for every lane, and everyone is done with tile - 1's stage
    const int next = tile + kTokenSumStages - 1;
    if (next < tiles) load_tile(next);
    cp_async_commit();

    const int slot = tile / k_tiles, k_tile = tile % k_tiles;
    const unsigned stage = ring + (tile % kTokenSumStages) * kTokenSumStageBytes;
    const bf16* a = a_rows + static_cast<std::int64_t>(slot) * params.ldi + k_tile * kTokenSumDepth;
    const std::int64_t left = params.ldi - static_cast<std::int64_t>(k_tile) * kTokenSumDepth;
    const int depth = left < kTokenSumDepth ? static_cast<int>(left) : kTokenSumDepth;
#pragma unroll
    for (int kk = 0; kk < kTokenSumDepth / 16; ++kk) {
      if (kk * 16 >= depth) break;
      // A: the row repeated on all 16 rows of the fragment (rows g and g + 8 hold the same values).
      const unsigned low = *reinterpret_cast<const unsigned*>(a + kk * 16 + 2 * quad);
      const unsigned high = *reinterpret_cast<const unsigned*>(a + kk * 16 + 8 + 2 * quad);
      const unsigned a_fragment[4] = {low, low, high, high};
      const int row = (lane & 7) + ((lane >> 4) << 3), chunk = kk * 2 + ((lane >> 3) & 1);
      unsigned b[4];
      ldmatrix_x4(b, stage + row * 256 + ((chunk ^ (row & 7)) * 16));
      mma_bf16_16816(acc[0], a_fragment, b[0], b[1]);
      mma_bf16_16816(acc[1], a_fragment, b[2], b[3]);
    }
    if (k_tile == k_tiles - 1) {  // the slot is done: weight it and add it, in slot order
      const float weight = slot_weight[slot];
#pragma unroll
      for (int fn = 0; fn < 2; ++fn) {
        total[fn][0] += weight * acc[fn][0];
        total[fn][1] += weight * acc[fn][1];
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[fn][i] = 0.0f;
      }
    }
  }
  cp_async_wait<0>();
  // Row 0 of the result sits in lanes 0-3 (columns 2 quad, 2 quad + 1 of each 8-column fragment).
  if (lane < 4) {
    bf16* out_row = params.out + token * params.hidden;
#pragma unroll
    for (int fn = 0; fn < 2; ++fn) {
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const std::int64_t column = n0 + fn * 8 + 2 * quad + j;
        if (column < params.hidden) out_row[column] = __float2bfloat16_rn(total[fn][j]);
      }
    }
  }
#endif
}

}  // namespace fusedmoe::cuda_fused
