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

#include <climits>
#include <cstdint>

#include "backends/cuda_fused/kernels/sm80_bf16_grouped_gemm.cuh"
#include "backends/cuda_fused/kernels/weight_panels.cuh"

namespace fusedmoe::cuda_fused {

inline constexpr int kStreamMaxTokens = 64;  // M per call the streaming path takes
inline constexpr int kStreamMaxPairs = 512;  // M * k per call
inline constexpr int kStreamMaxLocalExperts = 1024;
inline constexpr int kStreamGemm1Warps = 4;      // split over H, summed in warp order
inline constexpr int kStreamGemm2Warps = 8;      // (expert, I slice) items, summed in warp order
inline constexpr int kStreamTokensPerPass = 32;  // four n8 fragments; more tokens take more passes
// Weights travel global -> shared by cp.async into a ring private to each thread (it reads back only what
// it loaded, so no barrier is needed): kStreamDepth - 1 steps stay in flight while one is multiplied.
// One step = 2 chunks of 32 columns of each of the thread's weight rows (4 in GEMM1, 2 in GEMM2).
inline constexpr int kStreamChunksPerStep = 2;
inline constexpr int kStreamGemm1Rows = 4, kStreamGemm1Depth = 5;
inline constexpr int kStreamGemm2Rows = 2, kStreamGemm2Depth = 8;

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
  std::int64_t a_columns;     // columns holding data (multiple of 8); later ones read as zero
  const bf16* w13;            // converted [E_local][2 I_pad][weight_depth] in k-panels (weight_panels.cuh)
  std::int64_t weight_depth;  // H_k, a multiple of 64
  std::int64_t panel_stride;
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
  const bf16* w2;            // converted [E_local][H_n][ldi] in k-panels
  std::int64_t panel_stride;
  std::int64_t expert_stride;
  const float* topk_weights;  // [M * k]
  int num_tokens;
  bf16* out;  // [M, hidden]
  std::int64_t hidden;
};

// Shared memory of the GEMM1 kernel (the ring comes first, 16-byte aligned).
struct StreamGemm1Shared {
  uint4 ring[kStreamGemm1Depth][kStreamChunksPerStep * kStreamGemm1Rows][kStreamGemm1Warps * 32];
  int pairs[kStreamMaxPairs];
  int warp_counts[32];
  float partial[kStreamGemm1Warps][2][kStreamTokensPerPass / 8][4][32];
};

// Shared memory of the GEMM2 kernel.
struct StreamGemm2Shared {
  uint4 ring[kStreamGemm2Depth][kStreamChunksPerStep * kStreamGemm2Rows][kStreamGemm2Warps * 32];
  int local_of_pair[kStreamMaxPairs];
  int expert_count[kStreamMaxLocalExperts];  // pairs per local expert
  int active_experts[kStreamMaxLocalExperts];
  int warp_counts[32];
  int pairs[kStreamGemm2Warps][kStreamMaxPairs];        // each warp's current expert's pairs
  float sums[kStreamGemm2Warps][kStreamMaxTokens][16];  // each warp's weighted partial sums
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

// The 16 bytes this thread put at `slot` of its ring (written by its own cp.async: visible to it after
// cp.async.wait_group, no barrier).
__device__ __forceinline__ uint4 ring_read(const uint4* slot_piece) {
  return slot_piece[threadIdx.x];
}

#endif  // __CUDA_ARCH__ >= 800

// GEMM1 + activation. grid = (2 I_pad / 32 row groups of the converted w13, slots); one block computes
// 16 intermediate columns (a 16-row gate fragment and its 16-row up fragment) for every token of one
// expert, its warps splitting H. The expert's weights start streaming before its tokens are known.
__global__ void __launch_bounds__(kStreamGemm1Warps * 32, 2) stream_gemm1_kernel(StreamGemm1Params params) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  constexpr int kWarps = kStreamGemm1Warps, kTiles = kStreamTokensPerPass / 8;
  constexpr int kDepth = kStreamGemm1Depth, kSteps = kStreamChunksPerStep, kRows = kStreamGemm1Rows;
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  StreamGemm1Shared& shared = *reinterpret_cast<StreamGemm1Shared*>(shared_bytes);
  const StreamRouting& routing = params.routing;
  const int thread = threadIdx.x, lane = thread % 32, warp = thread / 32;

  const int expert = params.slots_are_pairs ? stream_local_expert(routing, static_cast<int>(blockIdx.y))
                                            : static_cast<int>(blockIdx.y);
  if (expert < 0) return;

  const int g = lane / 4, t4 = lane % 4;
  const int group = static_cast<int>(blockIdx.x);
  // Chunk c of a row (32 columns deep, this thread's 8 at 8 * t4) lies in k-panel c / 2.
  const bf16* gate = params.w13 + static_cast<std::int64_t>(expert) * params.expert_stride +
                     panel_offset(32 * static_cast<std::int64_t>(group) + g, 8 * t4, params.panel_stride);
  const bf16* rows[kRows] = {gate, gate + 8 * kPanelDepth, gate + 16 * kPanelDepth, gate + 24 * kPanelDepth};
  const int chunks = static_cast<int>(params.weight_depth / 32);
  const int chunk_begin = warp * chunks / kWarps, chunk_end = (warp + 1) * chunks / kWarps;
  const int steps_per_pass = (chunk_end - chunk_begin + kSteps - 1) / kSteps;
  const unsigned ring = static_cast<unsigned>(__cvta_generic_to_shared(&shared.ring[0][0][thread]));
  constexpr unsigned kPieceBytes = 16 * kWarps * 32;
  // Step t of this warp's stream (t counts across passes: every pass re-reads the same weights). Until the
  // tokens are counted the stream runs on unbounded: steps past the last pass are loaded but never read.
  int issued = 0, total_steps = steps_per_pass > 0 ? INT_MAX : 0;
  auto issue = [&]() {
    if (issued < total_steps) {
      const int step = issued % steps_per_pass, slot = issued % kDepth;
#pragma unroll
      for (int u = 0; u < kSteps; ++u) {
        const int chunk = chunk_begin + step * kSteps + u;
        const bool inside = chunk < chunk_end;
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          cp_async_16(
              ring + ((slot * kSteps + u) * kRows + r) * kPieceBytes,
              inside ? rows[r] + panel_offset(0, 32 * static_cast<std::int64_t>(chunk), params.panel_stride)
                     : params.w13,
              inside);
        }
      }
    }
    ++issued;
    cp_async_commit();  // one group per step, empty or not, so wait_group counts steps
  };
#pragma unroll
  for (int i = 0; i < kDepth - 1; ++i) issue();

  if (params.slots_are_pairs) {
    // An earlier pair with the same expert owns it: one block per (expert, column group).
    int earlier = 0;
    for (int q = thread; q < static_cast<int>(blockIdx.y); q += blockDim.x)
      earlier |= stream_local_expert(routing, q) == expert;
    if (__syncthreads_or(earlier)) {
      cp_async_wait<0>();
      return;
    }
  }
  const int count = block_compact(
      routing.num_pairs, [&](int q) { return stream_local_expert(routing, q) == expert; }, shared.pairs,
      shared.warp_counts);
  if (count == 0) {
    cp_async_wait<0>();
    return;
  }
  const int passes = (count + kStreamTokensPerPass - 1) / kStreamTokensPerPass;
  total_steps = passes * steps_per_pass;
  int consumed = 0;

  for (int pass = 0; pass < passes; ++pass) {
    const int here = min(kStreamTokensPerPass, count - pass * kStreamTokensPerPass);
    const int tiles = (here + 7) / 8;
    const bf16* token_row[kTiles];
#pragma unroll
    for (int tile = 0; tile < kTiles; ++tile) {
      const int n = tile * 8 + g;
      token_row[tile] =
          n < here
              ? params.hidden +
                    static_cast<std::int64_t>(shared.pairs[pass * kStreamTokensPerPass + n] / routing.top_k) *
                        params.lda +
                    8 * t4
              : nullptr;
    }
    float acc[2][kTiles][4] = {};
    // The tokens' 16 bytes of the next step are loaded while this step multiplies (registers).
    uint4 b_now[kSteps][kTiles], b_next[kSteps][kTiles];
    auto load_tokens = [&](uint4(&into)[kSteps][kTiles], int step) {
#pragma unroll
      for (int u = 0; u < kSteps; ++u) {
        const std::int64_t column = 32 * static_cast<std::int64_t>(chunk_begin + step * kSteps + u);
        const bool inside = step < steps_per_pass && chunk_begin + step * kSteps + u < chunk_end &&
                            column + 8 * t4 < params.a_columns;
#pragma unroll
        for (int tile = 0; tile < kTiles; ++tile) {
          into[u][tile] = inside && tile < tiles && token_row[tile] != nullptr
                              ? load_16(token_row[tile] + column)
                              : make_uint4(0, 0, 0, 0);
        }
      }
    };
    load_tokens(b_now, 0);
    for (int step = 0; step < steps_per_pass; ++step) {
      issue();
      load_tokens(b_next, step + 1);
      cp_async_wait<kDepth - 1>();  // this step's group has landed
      const int slot = consumed % kDepth;
      ++consumed;
#pragma unroll
      for (int u = 0; u < kSteps; ++u) {
        const int chunk = chunk_begin + step * kSteps + u;
        if (chunk >= chunk_end) break;
        uint4 w[kRows];
#pragma unroll
        for (int r = 0; r < kRows; ++r) w[r] = ring_read(shared.ring[slot][u * kRows + r]);
#pragma unroll
        for (int tile = 0; tile < kTiles; ++tile) {
          if (tile >= tiles) break;
          mma_chunk(acc[0][tile], w[0], w[1], b_now[u][tile]);
          mma_chunk(acc[1][tile], w[2], w[3], b_now[u][tile]);
        }
      }
#pragma unroll
      for (int u = 0; u < kSteps; ++u) {
#pragma unroll
        for (int tile = 0; tile < kTiles; ++tile) b_now[u][tile] = b_next[u][tile];
      }
    }

    // Sum the warps' partial dot products in warp order, then act(gate) * up for this block's columns.
#pragma unroll
    for (int m = 0; m < 2; ++m) {
#pragma unroll
      for (int tile = 0; tile < kTiles; ++tile) {
#pragma unroll
        for (int r = 0; r < 4; ++r) shared.partial[warp][m][tile][r][lane] = acc[m][tile][r];
      }
    }
    __syncthreads();
    if (warp == 0) {
      for (int tile = 0; tile < tiles; ++tile) {
#pragma unroll
        for (int r = 0; r < 4; ++r) {
          float gate_sum = shared.partial[0][0][tile][r][lane], up_sum = shared.partial[0][1][tile][r][lane];
#pragma unroll
          for (int w = 1; w < kWarps; ++w) {
            gate_sum += shared.partial[w][0][tile][r][lane];
            up_sum += shared.partial[w][1][tile][r][lane];
          }
          // Fragment register r: weight row g + 8 (r / 2), token column 2 t4 + r % 2.
          const int n = tile * 8 + 2 * t4 + r % 2;
          if (n >= here) continue;
          const std::int64_t column = 16 * static_cast<std::int64_t>(group) + g + 8 * (r / 2);
          params.intermediate[static_cast<std::int64_t>(shared.pairs[pass * kStreamTokensPerPass + n]) *
                                  params.ldi +
                              column] =
              __float2bfloat16_rn(gated_activation(gate_sum, up_sum, params.activation));
        }
      }
    }
    __syncthreads();  // partial is rewritten by the next pass
  }
  cp_async_wait<0>();
#endif
}

// GEMM2 + routing weight + sum over top-k. grid = ceil(H / 16) blocks of 16 output columns; each block
// walks every local expert that has tokens (in ascending id), split into `slices` parts of I, as
// (expert, slice) items dealt to its warps round robin. A warp adds weight * (intermediate . w2) into its
// own per-token sums; the block then adds the warps' sums in warp order and writes bf16. Deterministic:
// the items, their warps and every order of summation depend only on the batch's top-k ids. A warp's
// weight stream runs on across its items, so the next item's rows are in flight while this one finishes.
__global__ void __launch_bounds__(kStreamGemm2Warps * 32, 1) stream_gemm2_kernel(StreamGemm2Params params) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  constexpr int kWarps = kStreamGemm2Warps, kTiles = kStreamTokensPerPass / 8;
  constexpr int kDepth = kStreamGemm2Depth, kSteps = kStreamChunksPerStep, kRows = kStreamGemm2Rows;
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  StreamGemm2Shared& shared = *reinterpret_cast<StreamGemm2Shared*>(shared_bytes);
  const StreamRouting& routing = params.routing;
  const int thread = threadIdx.x, lane = thread % 32, warp = thread / 32;

  for (int q = thread; q < routing.num_pairs; q += blockDim.x)
    shared.local_of_pair[q] = stream_local_expert(routing, q);
  for (int e = thread; e < routing.num_local_experts; e += blockDim.x) shared.expert_count[e] = 0;
  for (int index = thread; index < kWarps * params.num_tokens * 16; index += blockDim.x) {
    const int w = index / (params.num_tokens * 16), rest = index % (params.num_tokens * 16);
    shared.sums[w][rest / 16][rest % 16] = 0.0f;
  }
  __syncthreads();
  for (int q = thread; q < routing.num_pairs; q += blockDim.x) {
    if (shared.local_of_pair[q] >= 0) atomicAdd(&shared.expert_count[shared.local_of_pair[q]], 1);
  }
  __syncthreads();
  const int active = block_compact(
      routing.num_local_experts, [&](int e) { return shared.expert_count[e] != 0; }, shared.active_experts,
      shared.warp_counts);

  const int chunks = static_cast<int>(params.ldi / 32);
  // Enough items for every warp twice at small M, slices at least two chunks deep.
  const int slices = max(1, min((2 * kWarps + active - 1) / max(active, 1), chunks / 2));
  const int items = active * slices;
  const int g = lane / 4, t4 = lane % 4;
  const std::int64_t row0 = 16 * static_cast<std::int64_t>(blockIdx.x);
  const std::int64_t row_offset = panel_offset(row0 + g, 8 * t4, params.panel_stride);
  int* pairs = shared.pairs[warp];
  const unsigned ring = static_cast<unsigned>(__cvta_generic_to_shared(&shared.ring[0][0][thread]));
  constexpr unsigned kPieceBytes = 16 * kWarps * 32;

  struct ItemShape {
    int expert, chunk_begin, chunk_end, steps_per_pass, steps;
  };
  auto item_shape = [&](int item) {
    ItemShape shape;
    shape.expert = shared.active_experts[item / slices];
    const int slice = item % slices;
    shape.chunk_begin = slice * chunks / slices;
    shape.chunk_end = (slice + 1) * chunks / slices;
    shape.steps_per_pass = (shape.chunk_end - shape.chunk_begin + kSteps - 1) / kSteps;
    const int passes = (shared.expert_count[shape.expert] + kStreamTokensPerPass - 1) / kStreamTokensPerPass;
    shape.steps = passes * shape.steps_per_pass;
    return shape;
  };
  // The issue cursor: item (this warp's items are warp, warp + kWarps, ...) and step within it.
  int issue_item = warp, issue_step = 0, issued = 0;
  ItemShape issue_shape{};
  if (issue_item < items) issue_shape = item_shape(issue_item);
  auto issue = [&]() {
    while (issue_item < items && issue_step >= issue_shape.steps) {
      issue_item += kWarps;
      issue_step = 0;
      if (issue_item < items) issue_shape = item_shape(issue_item);
    }
    if (issue_item < items) {
      const int step = issue_step % issue_shape.steps_per_pass, slot = issued % kDepth;
      const bf16* row_lo =
          params.w2 + static_cast<std::int64_t>(issue_shape.expert) * params.expert_stride + row_offset;
#pragma unroll
      for (int u = 0; u < kSteps; ++u) {
        const int chunk = issue_shape.chunk_begin + step * kSteps + u;
        const bool inside = chunk < issue_shape.chunk_end;
        const std::int64_t column =
            panel_offset(0, 32 * static_cast<std::int64_t>(chunk), params.panel_stride);
        cp_async_16(ring + ((slot * kSteps + u) * kRows + 0) * kPieceBytes,
                    inside ? row_lo + column : params.w2, inside);
        cp_async_16(ring + ((slot * kSteps + u) * kRows + 1) * kPieceBytes,
                    inside ? row_lo + 8 * kPanelDepth + column : params.w2, inside);
      }
      ++issue_step;
    }
    ++issued;
    cp_async_commit();
  };
#pragma unroll
  for (int i = 0; i < kDepth - 1; ++i) issue();
  int consumed = 0;

  for (int item = warp; item < items; item += kWarps) {
    const ItemShape shape = item_shape(item);
    int count = 0;  // this expert's pairs, ascending
    for (int base = 0; base < routing.num_pairs; base += 32) {
      const int q = base + lane;
      const bool mine = q < routing.num_pairs && shared.local_of_pair[q] == shape.expert;
      const unsigned mask = __ballot_sync(0xffffffffu, mine);
      if (mine) pairs[count + __popc(mask & ((1u << lane) - 1u))] = q;
      count += __popc(mask);
    }
    __syncwarp();

    for (int pass = 0; pass * kStreamTokensPerPass < count; ++pass) {
      const int here = min(kStreamTokensPerPass, count - pass * kStreamTokensPerPass);
      const int tiles = (here + 7) / 8;
      const bf16* token_row[kTiles];
#pragma unroll
      for (int tile = 0; tile < kTiles; ++tile) {
        const int n = tile * 8 + g;
        token_row[tile] =
            n < here
                ? params.intermediate +
                      static_cast<std::int64_t>(pairs[pass * kStreamTokensPerPass + n]) * params.ldi + 8 * t4
                : nullptr;
      }
      float acc[kTiles][4] = {};
      uint4 b_now[kSteps][kTiles], b_next[kSteps][kTiles];
      auto load_tokens = [&](uint4(&into)[kSteps][kTiles], int step) {
#pragma unroll
        for (int u = 0; u < kSteps; ++u) {
          const int chunk = shape.chunk_begin + step * kSteps + u;
          const bool inside = step < shape.steps_per_pass && chunk < shape.chunk_end;
#pragma unroll
          for (int tile = 0; tile < kTiles; ++tile) {
            into[u][tile] = inside && tile < tiles && token_row[tile] != nullptr
                                ? load_16(token_row[tile] + 32 * static_cast<std::int64_t>(chunk))
                                : make_uint4(0, 0, 0, 0);
          }
        }
      };
      load_tokens(b_now, 0);
      for (int step = 0; step < shape.steps_per_pass; ++step) {
        issue();
        load_tokens(b_next, step + 1);
        cp_async_wait<kDepth - 1>();
        const int slot = consumed % kDepth;
        ++consumed;
#pragma unroll
        for (int u = 0; u < kSteps; ++u) {
          const int chunk = shape.chunk_begin + step * kSteps + u;
          if (chunk >= shape.chunk_end) break;
          const uint4 w_lo = ring_read(shared.ring[slot][u * kRows + 0]);
          const uint4 w_hi = ring_read(shared.ring[slot][u * kRows + 1]);
#pragma unroll
          for (int tile = 0; tile < kTiles; ++tile) {
            if (tile >= tiles) break;
            mma_chunk(acc[tile], w_lo, w_hi, b_now[u][tile]);
          }
        }
#pragma unroll
        for (int u = 0; u < kSteps; ++u) {
#pragma unroll
          for (int tile = 0; tile < kTiles; ++tile) b_now[u][tile] = b_next[u][tile];
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
            const int pair = pairs[pass * kStreamTokensPerPass + n];
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
  cp_async_wait<0>();
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
