// Device kernels of the local batched PrepareFinalize (src/parallel/batched_prepare_finalize.cpp): the slabs
// [E_local, capacity, H] and their bookkeeping built on the GPU from the routing, and the weighted combine
// back into tokens. Nothing is read back to the host, so a local_batched forward captures in a CUDA graph.
// Plain C++ (no CUDA headers); compiled only with CUDA. Every function enqueues on `stream` of CUDA device
// `device` (made current for the call), allocates nothing and never waits. Pointers are device pointers.
#pragma once

#include <cstddef>
#include <cstdint>

#include "fusedmoe/device.hpp"
#include "fusedmoe/dtype.hpp"

namespace fusedmoe::cuda {

// Slots of every (token, slot) pair, as the CPU path assigns them: pair p = token * k + slot goes to its
// local expert e (through the expert map, if any) at position counts[e]++, pairs taken in ascending p, so a
// slab lists its tokens in ascending order. One block per local expert walks all pairs in order (no atomics:
// deterministic). Pairs with an id outside [0, E), a map entry outside [0, E_local), or past a full slab
// (possible only when a token lists an expert twice, which the CPU path rejects) get pair_slot -1 and
// contribute nothing.
struct BatchedSlots {
  const std::int32_t* topk_ids = nullptr;    // [M, k]
  const float* topk_weights = nullptr;       // [M, k]
  const std::int32_t* expert_map = nullptr;  // [E] or nullptr (identity)
  std::int64_t num_tokens = 0;
  int top_k = 0;
  std::int64_t num_experts = 0;
  std::int64_t num_local_experts = 0;
  std::int64_t capacity = 0;           // E_local * capacity <= INT32_MAX (slot ids are int32)
  std::int32_t* counts = nullptr;      // [E_local]: valid rows per slab, at most capacity
  std::int32_t* slot_token = nullptr;  // [E_local, capacity]: source token of each valid slot
  float* slot_weight = nullptr;        // [E_local, capacity]: routing weight of each valid slot
  std::int32_t* pair_slot = nullptr;   // [M, k]: e * capacity + position, or -1
};
void batched_assign_slots(int device, const BatchedSlots& slots, StreamHandle stream);

// slab row pair_slot[p] = hidden row p / k, for every pair with a slot; rows of row_bytes bytes.
void batched_scatter_rows(int device, const void* hidden, const std::int32_t* pair_slot,
                          std::int64_t num_pairs, int top_k, std::size_t row_bytes, void* slabs,
                          StreamHandle stream);

// out[t, :] = sum over token t's pairs with a slot, in ascending slot order (= ascending local expert, the
// CPU's order), of slot_weight[slot] * expert_out[slot, :], in fp32, rounded once into out's dtype; tokens
// with no slot get 0. expert_out [E_local * capacity, width] and out [M, width] in fp32, bf16 or fp16.
struct BatchedCombine {
  const void* expert_out = nullptr;
  DType expert_out_dtype = DType::fp32;
  const float* slot_weight = nullptr;
  const std::int32_t* pair_slot = nullptr;
  std::int64_t num_tokens = 0;
  int top_k = 0;
  std::int64_t width = 0;
  void* out = nullptr;
  DType out_dtype = DType::fp32;
};
void batched_combine(int device, const BatchedCombine& combine, StreamHandle stream);

}  // namespace fusedmoe::cuda
