// The steps around a library grouped GEMM (cuda_cutlass_grouped, cuda_cublas_grouped): plain C++ launchers
// (no CUDA headers), each on the given stream, allocating nothing and never waiting for the device.
//
//   sort_pairs_by_expert  (token, slot) pairs -> per local expert, in pair order: offsets, sorted pairs, and
//                         each pair's row in that order (-1 when its expert is not local)
//   gather_rows           hidden rows in sorted order: a_sorted [rows, H]
//   (GEMM1)               a_sorted . w13[e]^T -> c1 [rows, 2I] (gate columns, then up columns)
//   gated_activation      act(gate) * up in fp32 -> intermediate [rows, I]
//   (GEMM2)               intermediate . w2[e]^T -> c2 [rows, H]
//   reduce_pairs          out[t] = sum over slots, in slot order, in fp32, of topk_weights[t, s] * c2[row(t,
//   s)]
//
// rows = the number of pairs routed to local experts; it is known only on the device (offsets[E_local]), so
// every launch is sized for all M * k pairs and threads past the real rows return.
#pragma once

#include <cstdint>

#include "fusedmoe/device.hpp"

namespace fusedmoe::cuda {

// Pairs per tile of the stable counting sort: one histogram row per tile.
inline constexpr std::int64_t kSortTilePairs = 1024;

inline std::int64_t sort_tiles(std::int64_t num_pairs) {
  return (num_pairs + kSortTilePairs - 1) / kSortTilePairs;
}

struct SortPairs {
  const std::int32_t* topk_ids;    // [pairs] global expert ids
  std::int64_t num_pairs;          // M * k (< 2^31)
  const std::int32_t* expert_map;  // [E] global -> local (-1: not here), or nullptr for identity
  int num_experts;                 // E (ids outside [0, E) are skipped)
  int num_local_experts;           // E_local
  std::int32_t* tile_counts;       // scratch [sort_tiles(pairs), E_local]
  std::int64_t* offsets;           // [E_local + 1]: expert e's rows are [offsets[e], offsets[e + 1])
  std::int32_t* sorted_pairs;      // [pairs]: the pair of each row (rows past offsets[E_local] untouched)
  std::int32_t* pair_row;          // [pairs]: the row of each pair, -1 when its expert is not local
};
// Deterministic: inside an expert, rows follow the pair order (count per tile, scan, one warp per tile).
void sort_pairs_by_expert(const SortPairs& args, StreamHandle stream);

// a_sorted[row, :] = hidden[sorted_pairs[row] / top_k, :] for row < offsets[E_local]; bf16, [*, hidden].
void gather_rows(const void* hidden, std::int64_t hidden_size, int top_k, const std::int32_t* sorted_pairs,
                 const std::int64_t* offsets, int num_local_experts, std::int64_t max_rows, void* a_sorted,
                 StreamHandle stream);

// intermediate[row, j] = act(c1[row, j]) * c1[row, I + j] in fp32, rounded to bf16, for row <
// offsets[E_local]. activation: 0 = SiLU, 1 = GELU (erf).
void gated_activation(const void* c1, std::int64_t intermediate_size, const std::int64_t* offsets,
                      int num_local_experts, std::int64_t max_rows, int activation, void* intermediate,
                      StreamHandle stream);

// out[t, :] = sum over s in slot order of topk_weights[t, s] * c2[pair_row[t * k + s], :], fp32, rounded to
// bf16; slots with pair_row -1 are skipped (a token with no local expert gets zeros). out [M, H] bf16.
void reduce_pairs(const void* c2, const std::int32_t* pair_row, const float* topk_weights,
                  std::int64_t num_tokens, int top_k, std::int64_t hidden_size, void* out,
                  StreamHandle stream);

}  // namespace fusedmoe::cuda
