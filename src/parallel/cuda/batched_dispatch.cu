#include "parallel/cuda/batched_dispatch.hpp"

#include <algorithm>

#include "backends/cuda_common/cuda_check.hpp"
#include "backends/cuda_common/kernels/elements.cuh"
#include "core/check.hpp"
#include "parallel/cuda/widest_word.cuh"

namespace fusedmoe::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

// One block per local expert. Each round the block takes kThreads consecutive pairs; a warp ballot and the
// per-warp totals give every pair of this expert its rank among the expert's pairs so far, in pair order.
__global__ void assign_slots_kernel(BatchedSlots p) {
  __shared__ int warp_total[kWarps];
  const std::int64_t expert = blockIdx.x;
  const int lane = static_cast<int>(threadIdx.x % 32), warp = static_cast<int>(threadIdx.x / 32);
  const std::int64_t pairs = p.num_tokens * p.top_k;
  std::int64_t taken = 0;  // this expert's pairs in earlier rounds (the same in every thread)
  for (std::int64_t base = 0; base < pairs; base += kThreads) {
    const std::int64_t pair = base + threadIdx.x;
    std::int64_t local = -1;
    if (pair < pairs) {
      const std::int32_t id = p.topk_ids[pair];
      if (id >= 0 && id < p.num_experts) {
        const std::int32_t mapped = p.expert_map != nullptr ? p.expert_map[id] : id;
        if (mapped >= 0 && mapped < p.num_local_experts) local = mapped;
      }
      // Pairs of no local expert: expert 0's block marks them, so every pair_slot is written exactly once.
      if (local < 0 && expert == 0) p.pair_slot[pair] = -1;
    }
    const bool mine = local == expert;
    const unsigned ballot = __ballot_sync(0xffffffffu, mine);
    if (lane == 0) warp_total[warp] = __popc(ballot);
    __syncthreads();
    std::int64_t before = taken, total = 0;
    for (int w = 0; w < kWarps; ++w) {
      if (w < warp) before += warp_total[w];
      total += warp_total[w];
    }
    if (mine) {
      const std::int64_t position = before + __popc(ballot & ((1u << lane) - 1u));
      if (position < p.capacity) {
        const std::int64_t slot = expert * p.capacity + position;
        p.slot_token[slot] = static_cast<std::int32_t>(pair / p.top_k);
        p.slot_weight[slot] = p.topk_weights[pair];
        p.pair_slot[pair] = static_cast<std::int32_t>(slot);
      } else {
        p.pair_slot[pair] = -1;  // the slab is full: a token listed this expert more than once
      }
    }
    taken += total;
    __syncthreads();  // warp_total is rewritten next round
  }
  if (threadIdx.x == 0 && expert < p.num_local_experts)
    p.counts[expert] = static_cast<std::int32_t>(taken < p.capacity ? taken : p.capacity);
}

// One block per pair; Word is the widest type that divides the row size and both base addresses.
template <class Word>
__global__ void scatter_pairs_kernel(const Word* hidden, const std::int32_t* pair_slot, int top_k,
                                     std::int64_t words_per_row, Word* slabs) {
  const std::int64_t pair = blockIdx.x;
  const std::int32_t slot = pair_slot[pair];
  if (slot < 0) return;
  const Word* in = hidden + (pair / top_k) * words_per_row;
  Word* out = slabs + static_cast<std::int64_t>(slot) * words_per_row;
  for (std::int64_t w = threadIdx.x; w < words_per_row; w += blockDim.x) out[w] = in[w];
}

// One block per token (grid.x) and kThreads columns per block (grid.y covers the width). Thread 0 sorts the
// token's slots into shared memory (insertion sort: k is small), then every thread sums its column.
__global__ void combine_kernel(const void* expert_out, ElementType in_type, const float* slot_weight,
                               const std::int32_t* pair_slot, int top_k, std::int64_t width, void* out,
                               ElementType out_type) {
  extern __shared__ std::int32_t sorted_slots[];  // [top_k]
  __shared__ int used;
  const std::int64_t token = blockIdx.x;
  if (threadIdx.x == 0) {
    int count = 0;
    for (int j = 0; j < top_k; ++j) {
      const std::int32_t slot = pair_slot[token * top_k + j];
      if (slot < 0) continue;
      int at = count++;
      for (; at > 0 && sorted_slots[at - 1] > slot; --at) sorted_slots[at] = sorted_slots[at - 1];
      sorted_slots[at] = slot;
    }
    used = count;
  }
  __syncthreads();
  const std::int64_t column = static_cast<std::int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (column >= width) return;
  float sum = 0.0f;
  for (int j = 0; j < used; ++j) {
    const std::int64_t slot = sorted_slots[j];
    sum += slot_weight[slot] * load_as_float(expert_out, in_type, slot * width + column);
  }
  store_from_float(out, out_type, token * width + column, sum);
}

}  // namespace

void batched_assign_slots(int device, const BatchedSlots& slots, StreamHandle stream) {
  FUSEDMOE_ASSERT(
      slots.num_local_experts * slots.capacity <= INT32_MAX && slots.num_local_experts <= INT32_MAX,
      "[local_batched] ", slots.num_local_experts, " slabs of ", slots.capacity, " rows");
  DeviceGuard guard(device);
  // At least one block: expert 0's block also marks the pairs of no local expert (all of them when E_local =
  // 0).
  assign_slots_kernel<<<static_cast<unsigned>(std::max<std::int64_t>(slots.num_local_experts, 1)), kThreads,
                        0, static_cast<cudaStream_t>(stream)>>>(slots);
  FUSEDMOE_CUDA_CHECK_LAUNCH();
}

void batched_scatter_rows(int device, const void* hidden, const std::int32_t* pair_slot,
                          std::int64_t num_pairs, int top_k, std::size_t row_bytes, void* slabs,
                          StreamHandle stream) {
  if (num_pairs == 0 || row_bytes == 0) return;
  FUSEDMOE_ASSERT(num_pairs <= INT32_MAX, "[local_batched] ", num_pairs, " pairs in one launch");
  DeviceGuard guard(device);
  const auto cuda_stream = static_cast<cudaStream_t>(stream);
  const std::uintptr_t alignment =
      reinterpret_cast<std::uintptr_t>(hidden) | reinterpret_cast<std::uintptr_t>(slabs) | row_bytes;
  auto launch = [&](auto word) {
    using Word = decltype(word);
    const auto words = static_cast<std::int64_t>(row_bytes / sizeof(Word));
    const int threads = static_cast<int>(std::clamp<std::int64_t>((words + 31) / 32 * 32, 32, kThreads));
    scatter_pairs_kernel<Word><<<static_cast<unsigned>(num_pairs), threads, 0, cuda_stream>>>(
        static_cast<const Word*>(hidden), pair_slot, top_k, words, static_cast<Word*>(slabs));
  };
  with_widest_word(alignment, launch);
  FUSEDMOE_CUDA_CHECK_LAUNCH();
}

void batched_combine(int device, const BatchedCombine& combine, StreamHandle stream) {
  if (combine.num_tokens == 0 || combine.width == 0) return;
  FUSEDMOE_ASSERT(
      combine.num_tokens <= INT32_MAX && combine.width <= static_cast<std::int64_t>(kThreads) * 65535,
      "[local_batched] combine of ", combine.num_tokens, " rows of width ", combine.width);
  DeviceGuard guard(device);
  const dim3 grid(static_cast<unsigned>(combine.num_tokens),
                  static_cast<unsigned>((combine.width + kThreads - 1) / kThreads));
  const std::size_t shared = static_cast<std::size_t>(std::max(combine.top_k, 1)) * sizeof(std::int32_t);
  combine_kernel<<<grid, kThreads, shared, static_cast<cudaStream_t>(stream)>>>(
      combine.expert_out, element_type(combine.expert_out_dtype), combine.slot_weight, combine.pair_slot,
      combine.top_k, combine.width, combine.out, element_type(combine.out_dtype));
  FUSEDMOE_CUDA_CHECK_LAUNCH();
}

}  // namespace fusedmoe::cuda
