// Device kernels of all2all_batched on CUDA (src/parallel/ep_batched_device.cpp): every step of the
// fixed-capacity exchange is computed on the GPU from the routing, so nothing is read back and a forward
// captures in a CUDA graph. Positions are assigned by block-wide ballot scans in a fixed order (no atomics),
// so every layout, and which pairs are dropped when a buffer is full, is deterministic; atomics only count
// the drops. Plain C++ (no CUDA headers); compiled only with CUDA. Every function enqueues on `stream` of
// CUDA device `device` (made current for the call), allocates nothing and never waits. Pointers are device
// pointers; buffer offsets are computed in 64 bits.
#pragma once

#include <cstddef>
#include <cstdint>

#include "fusedmoe/device.hpp"
#include "fusedmoe/dtype.hpp"

namespace fusedmoe::cuda {

// Send-side plan. Pair p = token * k + slot goes to rank owner[id] at position n = (pairs of that rank before
// p, in ascending p); it keeps the position when n < rank_capacity (pair_pos[p] = rank * rank_capacity + n
// and the local id of its expert there is written to the rank's metadata), else it is dropped (pair_pos[p] =
// -1, dropped[0] += 1). Ids outside [0, num_experts) get -1 and are not counted. The metadata of rank r is
// send_meta[r * (rank_capacity + 1) ...]: its row count (at most rank_capacity), then one local expert id
// per row. One block per destination rank.
struct EpRoute {
  const std::int32_t* topk_ids = nullptr;     // [num_pairs]
  std::int64_t num_pairs = 0;                 // M * k
  std::int64_t num_experts = 0;               // global
  const std::int32_t* owner = nullptr;        // [num_experts]: the rank holding each expert
  const std::int32_t* owner_local = nullptr;  // [num_experts]: its local id there
  int ranks = 0;
  std::int64_t rank_capacity = 0;         // ranks * rank_capacity <= INT32_MAX
  std::int32_t* send_meta = nullptr;      // [ranks, rank_capacity + 1]
  std::int32_t* pair_pos = nullptr;       // [num_pairs]
  unsigned long long* dropped = nullptr;  // dropped[0]
};
void ep_route_pairs(int device, const EpRoute& route, StreamHandle stream);

// Receive-side plan. Row r = source * rank_capacity + i arrived from rank `source` (valid when i < that
// rank's count) for local expert x; valid rows of each expert take slab positions in ascending r, i.e.
// (source rank, token, slot) order: row_slot[r] = x * slab_rows + position, slot_token[that slot] = r. Rows
// past a full slab (possible only when a token lists an expert twice) and invalid rows get row_slot -1; the
// former add to dropped[1]. counts[x] = valid rows of slab x; slot_weight = 1 everywhere (weighted at home).
// One block per local expert.
struct EpSlots {
  const std::int32_t* receive_meta = nullptr;  // [ranks, rank_capacity + 1], as EpRoute::send_meta
  int ranks = 0;
  std::int64_t rank_capacity = 0;
  std::int64_t num_local_experts = 0;
  std::int64_t slab_rows = 0;             // num_local_experts * slab_rows <= INT32_MAX
  std::int32_t* counts = nullptr;         // [num_local_experts]
  std::int32_t* slot_token = nullptr;     // [num_local_experts, slab_rows]
  float* slot_weight = nullptr;           // [num_local_experts, slab_rows]
  std::int32_t* row_slot = nullptr;       // [ranks * rank_capacity]
  unsigned long long* dropped = nullptr;  // dropped[1]
};
void ep_assign_slots(int device, const EpSlots& slots, StreamHandle stream);

// destination row index[p] = source row p / rows_per_source, for p < count with index[p] >= 0 (rows of
// row_bytes bytes). With rows_per_source = k: a pair's token row into its send position.
void ep_scatter_rows(int device, const void* source, std::int64_t rows_per_source, const std::int32_t* index,
                     std::int64_t count, std::size_t row_bytes, void* destination, StreamHandle stream);
// destination row i = source row index[i], or zeros where index[i] < 0, for i < count.
void ep_gather_rows_or_zero(int device, const void* source, const std::int32_t* index, std::int64_t count,
                            std::size_t row_bytes, void* destination, StreamHandle stream);

// Home: out[t, :] = sum over slots s = 0 .. k-1 (in that order) with pair_pos[t * k + s] >= 0 of
// topk_weights[t * k + s] * rows[pair_pos[t * k + s], :], in fp32, rounded once into out's dtype (0 when no
// slot arrived). Indexed by (token, slot), so the result does not depend on where the rows travelled.
struct EpCombine {
  const void* rows = nullptr;
  DType rows_dtype = DType::fp32;
  const float* topk_weights = nullptr;  // [num_tokens, top_k]
  const std::int32_t* pair_pos = nullptr;
  std::int64_t num_tokens = 0;
  int top_k = 0;
  std::int64_t width = 0;
  void* out = nullptr;
  DType out_dtype = DType::fp32;
};
void ep_combine(int device, const EpCombine& combine, StreamHandle stream);

// True while `stream` is being captured into a CUDA graph.
bool stream_is_capturing(int device, StreamHandle stream);

}  // namespace fusedmoe::cuda
