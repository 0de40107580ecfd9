// cuda_fused's small-M path: weight-streaming grouped GEMMs for decode batches (M <= kStreamMaxTokens).
// At small M every expert sees a handful of tokens and the layer is bound by reading the weights, so the
// roles swap: the weight rows are the mma's M side (16 rows per m16n8k16 fragment) and the expert's tokens
// are its N side (8 per fragment). Each thread loads its weight fragments straight from global memory as
// 16-byte vectors (no shared-memory staging): inside every 32-column chunk, thread t4 = lane % 4 reads
// columns 8 t4 .. 8 t4 + 7, which covers the chunk once; the activations are read with the same column
// permutation, so the dot products are unchanged (a sum does not care about the order of its columns).
// No align pass and no reduce pass: each block finds its expert's tokens itself (a deterministic, ordered
// compaction of the top-k ids), GEMM1 writes act(gate) * up per (token, slot) row, and GEMM2 sums over the
// token's experts in shared memory in a fixed order and writes the final [M, H] rows. Two launches per layer.
#pragma once

#include "backends/cuda_fused/kernels/sm80_bf16_grouped_gemm.cuh"

namespace fusedmoe::cuda_fused {

inline constexpr int kStreamMaxTokens = 64;   // M per call the streaming path takes
inline constexpr int kStreamMaxPairs = 512;   // M * k per call
inline constexpr int kStreamMaxLocalExperts = 1024;
inline constexpr int kStreamGemm1Warps = 4;   // split over H, summed in warp order
inline constexpr int kStreamGemm2Warps = 8;   // (expert, I slice) items, summed in warp order
inline constexpr int kStreamTokensPerPass = 32;  // four n8 fragments; more tokens take more passes

struct StreamRouting {
  const std::int32_t* topk_ids;    // [M * k] global ids
  const std::int32_t* expert_map;  // [E] global -> local, -1 = not here; nullptr = identity
  int num_experts;
  int num_local_experts;
  int num_pairs;  // M * k
  int top_k;
};

struct StreamGemm1Params {
  StreamRouting routing;
  const bf16* hidden;  // [M, lda], 16-byte aligned rows
  std::int64_t lda;
  std::int64_t a_columns;  // columns holding data (multiple of 8); later ones read as zero
  const bf16* w13;         // converted [E_local][2 I_pad][ldb]
  std::int64_t ldb;        // H_k, a multiple of 64
  std::int64_t expert_stride;
  bool slots_are_pairs;  // grid.y walks (token, slot) pairs (M * k <= E_local), else local experts
  bf16* intermediate;    // [M * k, ldi]: row = token * k + slot
  std::int64_t ldi;      // I_pad
  int activation;        // 0 = SiLU, 1 = GELU
};

struct StreamGemm2Params {
  StreamRouting routing;
  const bf16* intermediate;  // [M * k, ldi]
  std::int64_t ldi;          // I_pad: depth of GEMM2, a multiple of 64
  const bf16* w2;            // converted [E_local][H_n][ldi]
  std::int64_t expert_stride;
  const float* topk_weights;  // [M * k]
  int num_tokens;
  bf16* out;  // [M, hidden]
  std::int64_t hidden;
};

// Dynamic shared memory of the GEMM2 kernel.
struct StreamGemm2Shared {
  int local_of_pair[kStreamMaxPairs];
  int expert_flag[kStreamMaxLocalExperts];
  int active_experts[kStreamMaxLocalExperts];
  int warp_counts[32];
  int pairs[kStreamGemm2Warps][kStreamMaxPairs];            // each warp's current expert's pairs
  float sums[kStreamGemm2Warps][kStreamMaxTokens][16];      // each warp's weighted partial sums
};

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800

// The local expert of a (token, slot) pair, or -1 (id out of range, or not held here).
__device__ __forceinline__ int stream_local_expert(const StreamRouting& routing, int pair) {
  const int id = routing.topk_ids[pair];
  if (id < 0 || id >= routing.num_experts) return -1;
  const int local = routing.expert_map != nullptr ? routing.expert_map[id] : id;
  return local >= 0 && local < routing.num_local_experts ? local : -1;
}

__device__ __forceinline__ uint4 load_16(const bf16* pointer) {
  return __ldg(reinterpret_cast<const uint4*>(pointer));
}

// The indices i in [0, n) with keep(i), in ascending order, into list; returns their number (to every
// thread). blockDim.x must be a multiple of 32; warp_counts holds 32 ints.
template <class Keep>
__device__ int block_compact(int n, Keep keep, int* list, int* warp_counts) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  int total = 0;
  for (int base = 0; base < n; base += blockDim.x) {
    const int index = base + threadIdx.x;
    const bool flag = index < n && keep(index);
    const unsigned mask = __ballot_sync(0xffffffffu, flag);
    if (lane == 0) warp_counts[warp] = __popc(mask);
    __syncthreads();
    int offset = total, chunk = 0;
    for (int w = 0; w < warps; ++w) {
      if (w < warp) offset += warp_counts[w];
      chunk += warp_counts[w];
    }
    if (flag) list[offset + __popc(mask & ((1u << lane) - 1u))] = index;
    total += chunk;
    __syncthreads();  // warp_counts is rewritten by the next round
  }
  return total;
}

// mma over one 32-column chunk: `a_lo` / `a_hi` are rows g and g + 8 of a 16-row fragment, `b` the
// token's 16 bytes at the same columns (see the permutation in the file comment).
__device__ __forceinline__ void mma_chunk(float (&acc)[4], const uint4& a_lo, const uint4& a_hi,
                                          const uint4& b) {
  const unsigned step0[4] = {a_lo.x, a_hi.x, a_lo.y, a_hi.y};
  const unsigned step1[4] = {a_lo.z, a_hi.z, a_lo.w, a_hi.w};
  mma_bf16_16816(acc, step0, b.x, b.y);
  mma_bf16_16816(acc, step1, b.z, b.w);
}

#endif  // __CUDA_ARCH__ >= 800

// GEMM1 + activation. grid = (2 I_pad / 32 row groups of the converted w13, slots); one block computes
// 16 intermediate columns (a 16-row gate fragment and its 16-row up fragment) for every token of one
// expert, its warps splitting H.
__global__ void __launch_bounds__(kStreamGemm1Warps * 32, 3) stream_gemm1_kernel(StreamGemm1Params params) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  constexpr int kWarps = kStreamGemm1Warps, kTiles = kStreamTokensPerPass / 8;
  __shared__ int pairs[kStreamMaxPairs];
  __shared__ int warp_counts[32];
  __shared__ float partial[kWarps][2][kTiles][4][32];
  const StreamRouting& routing = params.routing;
  const int thread = threadIdx.x, lane = thread % 32, warp = thread / 32;

  int expert = static_cast<int>(blockIdx.y);
  if (params.slots_are_pairs) {
    expert = stream_local_expert(routing, static_cast<int>(blockIdx.y));
    if (expert < 0) return;
    // An earlier pair with the same expert owns it: one block per (expert, column group).
    int earlier = 0;
    for (int q = thread; q < static_cast<int>(blockIdx.y); q += blockDim.x)
      earlier |= stream_local_expert(routing, q) == expert;
    if (__syncthreads_or(earlier)) return;
  }
  const int count = block_compact(
      routing.num_pairs, [&](int q) { return stream_local_expert(routing, q) == expert; }, pairs,
      warp_counts);
  if (count == 0) return;

  const int g = lane / 4, t4 = lane % 4;
  const int group = static_cast<int>(blockIdx.x);
  const bf16* gate = params.w13 + static_cast<std::int64_t>(expert) * params.expert_stride +
                     (32 * static_cast<std::int64_t>(group) + g) * params.ldb + 8 * t4;
  const bf16* rows[4] = {gate, gate + 8 * params.ldb, gate + 16 * params.ldb, gate + 24 * params.ldb};
  const int chunks = static_cast<int>(params.ldb / 32);
  const int chunk_begin = warp * chunks / kWarps, chunk_end = (warp + 1) * chunks / kWarps;

  for (int pass = 0; pass < count; pass += kStreamTokensPerPass) {
    const int here = min(kStreamTokensPerPass, count - pass);
    const int tiles = (here + 7) / 8;
    const bf16* token_row[kTiles];
#pragma unroll
    for (int tile = 0; tile < kTiles; ++tile) {
      const int n = tile * 8 + g;
      token_row[tile] = n < here ? params.hidden + static_cast<std::int64_t>(pairs[pass + n] / routing.top_k) *
                                                       params.lda +
                                       8 * t4
                                 : nullptr;
    }
    float acc[2][kTiles][4] = {};
    // Two chunks per step, the next step's weights loaded before this step's mma (double buffering).
    uint4 current[2][4], next[2][4];
    auto load = [&](uint4(&into)[2][4], int chunk) {
#pragma unroll
      for (int u = 0; u < 2; ++u) {
#pragma unroll
        for (int r = 0; r < 4; ++r) {
          into[u][r] = chunk + u < chunk_end ? load_16(rows[r] + 32 * static_cast<std::int64_t>(chunk + u))
                                             : make_uint4(0, 0, 0, 0);
        }
      }
    };
    if (chunk_begin < chunk_end) load(current, chunk_begin);
    for (int chunk = chunk_begin; chunk < chunk_end; chunk += 2) {
      if (chunk + 2 < chunk_end) load(next, chunk + 2);
#pragma unroll
      for (int u = 0; u < 2; ++u) {
        if (chunk + u >= chunk_end) break;
        const std::int64_t column = 32 * static_cast<std::int64_t>(chunk + u);
#pragma unroll
        for (int tile = 0; tile < kTiles; ++tile) {
          if (tile >= tiles) break;
          const uint4 b = token_row[tile] != nullptr && column + 8 * t4 < params.a_columns
                              ? load_16(token_row[tile] + column)
                              : make_uint4(0, 0, 0, 0);
          mma_chunk(acc[0][tile], current[u][0], current[u][1], b);
          mma_chunk(acc[1][tile], current[u][2], current[u][3], b);
        }
      }
#pragma unroll
      for (int u = 0; u < 2; ++u) {
#pragma unroll
        for (int r = 0; r < 4; ++r) current[u][r] = next[u][r];
      }
    }

    // Sum the warps' partial dot products in warp order, then act(gate) * up for this block's columns.
#pragma unroll
    for (int m = 0; m < 2; ++m) {
#pragma unroll
      for (int tile = 0; tile < kTiles; ++tile) {
#pragma unroll
        for (int r = 0; r < 4; ++r) partial[warp][m][tile][r][lane] = acc[m][tile][r];
      }
    }
    __syncthreads();
    if (warp == 0) {
      for (int tile = 0; tile < tiles; ++tile) {
#pragma unroll
        for (int r = 0; r < 4; ++r) {
          float gate_sum = partial[0][0][tile][r][lane], up_sum = partial[0][1][tile][r][lane];
#pragma unroll
          for (int w = 1; w < kWarps; ++w) {
            gate_sum += partial[w][0][tile][r][lane];
            up_sum += partial[w][1][tile][r][lane];
          }
          // Fragment register r: weight row g + 8 (r / 2), token column 2 t4 + r % 2.
          const int n = tile * 8 + 2 * t4 + r % 2;
          if (n >= here) continue;
          const std::int64_t column = 16 * static_cast<std::int64_t>(group) + g + 8 * (r / 2);
          params.intermediate[static_cast<std::int64_t>(pairs[pass + n]) * params.ldi + column] =
              __float2bfloat16_rn(gated_activation(gate_sum, up_sum, params.activation));
        }
      }
    }
    __syncthreads();  // partial is rewritten by the next pass
  }
#endif
}

// GEMM2 + routing weight + sum over top-k. grid = ceil(H / 16) blocks of 16 output columns; each block
// walks every local expert that has tokens (in ascending id), split into `slices` parts of I, as
// (expert, slice) items dealt to its warps round robin. A warp adds weight * (intermediate . w2) into its
// own per-token sums; the block then adds the warps' sums in warp order and writes bf16. Deterministic:
// the items, their warps and every order of summation depend only on the batch's top-k ids.
__global__ void __launch_bounds__(kStreamGemm2Warps * 32, 2) stream_gemm2_kernel(StreamGemm2Params params) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  constexpr int kWarps = kStreamGemm2Warps, kTiles = kStreamTokensPerPass / 8, kUnroll = 2;
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  StreamGemm2Shared& shared = *reinterpret_cast<StreamGemm2Shared*>(shared_bytes);
  const StreamRouting& routing = params.routing;
  const int thread = threadIdx.x, lane = thread % 32, warp = thread / 32;

  for (int q = thread; q < routing.num_pairs; q += blockDim.x)
    shared.local_of_pair[q] = stream_local_expert(routing, q);
  for (int e = thread; e < routing.num_local_experts; e += blockDim.x) shared.expert_flag[e] = 0;
  for (int index = thread; index < kWarps * params.num_tokens * 16; index += blockDim.x) {
    const int w = index / (params.num_tokens * 16), rest = index % (params.num_tokens * 16);
    shared.sums[w][rest / 16][rest % 16] = 0.0f;
  }
  __syncthreads();
  for (int q = thread; q < routing.num_pairs; q += blockDim.x) {
    if (shared.local_of_pair[q] >= 0) shared.expert_flag[shared.local_of_pair[q]] = 1;  // same value: no race
  }
  __syncthreads();
  const int active = block_compact(
      routing.num_local_experts, [&](int e) { return shared.expert_flag[e] != 0; }, shared.active_experts,
      shared.warp_counts);

  const int chunks = static_cast<int>(params.ldi / 32);
  // Enough items for every warp twice at small M, slices at least two chunks deep.
  const int slices = max(1, min((2 * kWarps + active - 1) / max(active, 1), chunks / 2));
  const int g = lane / 4, t4 = lane % 4;
  const std::int64_t row0 = 16 * static_cast<std::int64_t>(blockIdx.x);
  int* pairs = shared.pairs[warp];

  for (int item = warp; item < active * slices; item += kWarps) {
    const int expert = shared.active_experts[item / slices], slice = item % slices;
    const int chunk_begin = slice * chunks / slices, chunk_end = (slice + 1) * chunks / slices;
    int count = 0;  // this expert's pairs, ascending
    for (int base = 0; base < routing.num_pairs; base += 32) {
      const int q = base + lane;
      const bool mine = q < routing.num_pairs && shared.local_of_pair[q] == expert;
      const unsigned mask = __ballot_sync(0xffffffffu, mine);
      if (mine) pairs[count + __popc(mask & ((1u << lane) - 1u))] = q;
      count += __popc(mask);
    }
    __syncwarp();
    const bf16* row_lo = params.w2 + static_cast<std::int64_t>(expert) * params.expert_stride +
                         (row0 + g) * params.ldi + 8 * t4;
    const bf16* row_hi = row_lo + 8 * params.ldi;

    for (int pass = 0; pass < count; pass += kStreamTokensPerPass) {
      const int here = min(kStreamTokensPerPass, count - pass);
      const int tiles = (here + 7) / 8;
      const bf16* token_row[kTiles];
#pragma unroll
      for (int tile = 0; tile < kTiles; ++tile) {
        const int n = tile * 8 + g;
        token_row[tile] =
            n < here ? params.intermediate + static_cast<std::int64_t>(pairs[pass + n]) * params.ldi + 8 * t4
                     : nullptr;
      }
      float acc[kTiles][4] = {};
      uint4 current[kUnroll][2], next[kUnroll][2];
      auto load = [&](uint4(&into)[kUnroll][2], int chunk) {
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          const bool inside = chunk + u < chunk_end;
          const std::int64_t column = 32 * static_cast<std::int64_t>(chunk + u);
          into[u][0] = inside ? load_16(row_lo + column) : make_uint4(0, 0, 0, 0);
          into[u][1] = inside ? load_16(row_hi + column) : make_uint4(0, 0, 0, 0);
        }
      };
      if (chunk_begin < chunk_end) load(current, chunk_begin);
      for (int chunk = chunk_begin; chunk < chunk_end; chunk += kUnroll) {
        if (chunk + kUnroll < chunk_end) load(next, chunk + kUnroll);
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          if (chunk + u >= chunk_end) break;
          const std::int64_t column = 32 * static_cast<std::int64_t>(chunk + u);
#pragma unroll
          for (int tile = 0; tile < kTiles; ++tile) {
            if (tile >= tiles) break;
            const uint4 b = token_row[tile] != nullptr ? load_16(token_row[tile] + column) : make_uint4(0, 0, 0, 0);
            mma_chunk(acc[tile], current[u][0], current[u][1], b);
          }
        }
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          current[u][0] = next[u][0];
          current[u][1] = next[u][1];
        }
      }
      // Weighted into this warp's per-token sums, one token column at a time: a token listed twice for
      // one expert (duplicate ids) then adds in list order, never in a race.
#pragma unroll
      for (int tile = 0; tile < kTiles; ++tile) {
#pragma unroll
        for (int column = 0; column < 8; ++column) {
          const int n = tile * 8 + column;
          if (tile < tiles && column / 2 == t4 && n < here) {
            const int pair = pairs[pass + n];
            const float weight = params.topk_weights[pair];
            float* sums = shared.sums[warp][pair / routing.top_k];
            sums[g] += weight * acc[tile][column % 2];
            sums[g + 8] += weight * acc[tile][2 + column % 2];
          }
          __syncwarp();
        }
      }
    }
    __syncwarp();  // pairs is rewritten by the next item
  }
  __syncthreads();
  for (int index = thread; index < params.num_tokens * 16; index += blockDim.x) {
    const int token = index / 16, column = index % 16;
    if (row0 + column >= params.hidden) continue;
    float sum = shared.sums[0][token][column];
#pragma unroll
    for (int w = 1; w < kWarps; ++w) sum += shared.sums[w][token][column];
    params.out[static_cast<std::int64_t>(token) * params.hidden + row0 + column] = __float2bfloat16_rn(sum);
  }
#endif
}

}  // namespace fusedmoe::cuda_fused
