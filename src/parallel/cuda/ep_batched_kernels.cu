#include "parallel/cuda/ep_batched_kernels.hpp"

#include <algorithm>

#include "backends/cuda_common/cuda_check.hpp"
#include "backends/cuda_common/kernels/elements.cuh"
#include "core/check.hpp"
#include "parallel/cuda/widest_word.cuh"

namespace fusedmoe::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

// The block-wide exclusive rank of this thread's flag among the flags of this round, plus the earlier rounds'
// total `taken`; adds this round's total to `taken` (the same value in every thread). Every thread calls it.
__device__ std::int64_t scan_flag(bool flag, std::int64_t& taken, int* warp_total) {
  const int lane = static_cast<int>(threadIdx.x % 32), warp = static_cast<int>(threadIdx.x / 32);
  const unsigned ballot = __ballot_sync(0xffffffffu, flag);
  if (lane == 0) warp_total[warp] = __popc(ballot);
  __syncthreads();
  std::int64_t before = taken, total = 0;
  for (int w = 0; w < kWarps; ++w) {
    if (w < warp) before += warp_total[w];
    total += warp_total[w];
  }
  __syncthreads();  // warp_total is rewritten next round
  taken += total;
  return before + __popc(ballot & ((1u << lane) - 1u));
}

__global__ void route_kernel(EpRoute p) {
  __shared__ int warp_total[kWarps];
  const int destination = static_cast<int>(blockIdx.x);
  const std::int64_t stride = p.rank_capacity + 1;
  std::int64_t taken = 0;
  for (std::int64_t base = 0; base < p.num_pairs; base += kThreads) {
    const std::int64_t pair = base + threadIdx.x;
    int target = -1;
    std::int32_t local = -1;
    if (pair < p.num_pairs) {
      const std::int32_t id = p.topk_ids[pair];
      if (id >= 0 && id < p.num_experts) {
        target = p.owner[id];
        local = p.owner_local[id];
      }
      // Pairs of no expert: rank 0's block marks them, so every pair_pos is written exactly once.
      if (target < 0 && destination == 0) p.pair_pos[pair] = -1;
    }
    const bool mine = target == destination;
    const std::int64_t position = scan_flag(mine, taken, warp_total);
    if (mine) {
      if (position < p.rank_capacity) {
        p.send_meta[destination * stride + 1 + position] = local;
        p.pair_pos[pair] = static_cast<std::int32_t>(destination * p.rank_capacity + position);
      } else {
        p.pair_pos[pair] = -1;
        atomicAdd(&p.dropped[0], 1ull);
      }
    }
  }
  if (threadIdx.x == 0) {
    p.send_meta[destination * stride] =
        static_cast<std::int32_t>(taken < p.rank_capacity ? taken : p.rank_capacity);
  }
}

__global__ void slots_kernel(EpSlots p) {
  __shared__ int warp_total[kWarps];
  const std::int64_t expert = blockIdx.x;
  const std::int64_t stride = p.rank_capacity + 1, rows = p.ranks * p.rank_capacity;
  std::int64_t taken = 0;
  for (std::int64_t base = 0; base < rows; base += kThreads) {
    const std::int64_t row = base + threadIdx.x;
    std::int64_t target = -1;
    if (row < rows) {
      const std::int64_t source = row / p.rank_capacity, i = row % p.rank_capacity;
      const std::int64_t count = p.receive_meta[source * stride];  // written by the sender, <= capacity
      if (i < count) {
        const std::int32_t local = p.receive_meta[source * stride + 1 + i];
        if (local >= 0 && local < p.num_local_experts) target = local;
      }
      if (target < 0 && expert == 0) p.row_slot[row] = -1;
    }
    const bool mine = target == expert;
    const std::int64_t position = scan_flag(mine, taken, warp_total);
    if (mine) {
      if (position < p.slab_rows) {
        const std::int64_t slot = expert * p.slab_rows + position;
        p.row_slot[row] = static_cast<std::int32_t>(slot);
        p.slot_token[slot] = static_cast<std::int32_t>(row);
      } else {
        p.row_slot[row] = -1;
        atomicAdd(&p.dropped[1], 1ull);
      }
    }
  }
  const std::int64_t valid = taken < p.slab_rows ? taken : p.slab_rows;
  for (std::int64_t j = threadIdx.x; j < p.slab_rows; j += blockDim.x) {
    p.slot_weight[expert * p.slab_rows + j] = 1.0f;
    if (j >= valid) p.slot_token[expert * p.slab_rows + j] = 0;
  }
  if (threadIdx.x == 0) p.counts[expert] = static_cast<std::int32_t>(valid);
}

// One block per index entry; Word is the widest type that divides the row size and both base addresses.
template <class Word, bool kScatter>
__global__ void move_kernel(const Word* source, std::int64_t rows_per_source, const std::int32_t* index,
                            std::int64_t words_per_row, Word* destination) {
  const std::int64_t i = blockIdx.x;
  const std::int64_t at = index[i];
  if (kScatter) {
    if (at < 0) return;
    const Word* in = source + (i / rows_per_source) * words_per_row;
    Word* out = destination + at * words_per_row;
    for (std::int64_t w = threadIdx.x; w < words_per_row; w += blockDim.x) out[w] = in[w];
  } else {
    Word* out = destination + i * words_per_row;
    if (at < 0) {
      for (std::int64_t w = threadIdx.x; w < words_per_row; w += blockDim.x) out[w] = Word{};
      return;
    }
    const Word* in = source + at * words_per_row;
    for (std::int64_t w = threadIdx.x; w < words_per_row; w += blockDim.x) out[w] = in[w];
  }
}

template <bool kScatter>
void move(int device, const void* source, std::int64_t rows_per_source, const std::int32_t* index,
          std::int64_t count, std::size_t row_bytes, void* destination, StreamHandle stream) {
  if (count == 0 || row_bytes == 0) return;
  FUSEDMOE_ASSERT(count <= INT32_MAX && rows_per_source >= 1, "[all2all_batched] ", count,
                  " rows in one launch");
  DeviceGuard guard(device);
  const auto cuda_stream = static_cast<cudaStream_t>(stream);
  const std::uintptr_t alignment =
      reinterpret_cast<std::uintptr_t>(source) | reinterpret_cast<std::uintptr_t>(destination) | row_bytes;
  auto launch = [&](auto word) {
    using Word = decltype(word);
    const auto words = static_cast<std::int64_t>(row_bytes / sizeof(Word));
    const int threads = static_cast<int>(std::clamp<std::int64_t>((words + 31) / 32 * 32, 32, kThreads));
    move_kernel<Word, kScatter><<<static_cast<unsigned>(count), threads, 0, cuda_stream>>>(
        static_cast<const Word*>(source), rows_per_source, index, words, static_cast<Word*>(destination));
  };
  with_widest_word(alignment, launch);
  FUSEDMOE_CUDA_CHECK_LAUNCH();
}

// One block per token (grid.x) and kThreads columns per block (grid.y covers the width).
__global__ void combine_kernel(EpCombine c, ElementType rows_type, ElementType out_type) {
  const std::int64_t token = blockIdx.x;
  const std::int64_t column = static_cast<std::int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (column >= c.width) return;
  float sum = 0.0f;
  for (int slot = 0; slot < c.top_k; ++slot) {
    const std::int64_t pair = token * c.top_k + slot;
    const std::int64_t position = c.pair_pos[pair];
    if (position < 0) continue;
    sum += c.topk_weights[pair] * load_as_float(c.rows, rows_type, position * c.width + column);
  }
  store_from_float(c.out, out_type, token * c.width + column, sum);
}

}  // namespace

void ep_route_pairs(int device, const EpRoute& route, StreamHandle stream) {
  FUSEDMOE_ASSERT(route.ranks >= 1 && route.rank_capacity >= 1 &&
                      static_cast<std::int64_t>(route.ranks) * route.rank_capacity <= INT32_MAX,
                  "[all2all_batched] ", route.ranks, " ranks x ", route.rank_capacity, " rows");
  DeviceGuard guard(device);
  // One block per destination, even without pairs: every rank's row count is written.
  route_kernel<<<static_cast<unsigned>(route.ranks), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(route);
  FUSEDMOE_CUDA_CHECK_LAUNCH();
}

void ep_assign_slots(int device, const EpSlots& slots, StreamHandle stream) {
  FUSEDMOE_ASSERT(slots.num_local_experts >= 1 && slots.num_local_experts * slots.slab_rows <= INT32_MAX &&
                      static_cast<std::int64_t>(slots.ranks) * slots.rank_capacity <= INT32_MAX,
                  "[all2all_batched] ", slots.num_local_experts, " slabs of ", slots.slab_rows, " rows");
  DeviceGuard guard(device);
  slots_kernel<<<static_cast<unsigned>(slots.num_local_experts), kThreads, 0,
                 static_cast<cudaStream_t>(stream)>>>(slots);
  FUSEDMOE_CUDA_CHECK_LAUNCH();
}

void ep_scatter_rows(int device, const void* source, std::int64_t rows_per_source, const std::int32_t* index,
                     std::int64_t count, std::size_t row_bytes, void* destination, StreamHandle stream) {
  move<true>(device, source, rows_per_source, index, count, row_bytes, destination, stream);
}

void ep_gather_rows_or_zero(int device, const void* source, const std::int32_t* index, std::int64_t count,
                            std::size_t row_bytes, void* destination, StreamHandle stream) {
  move<false>(device, source, 1, index, count, row_bytes, destination, stream);
}

void ep_combine(int device, const EpCombine& combine, StreamHandle stream) {
  if (combine.num_tokens == 0 || combine.width == 0) return;
  FUSEDMOE_ASSERT(
      combine.num_tokens <= INT32_MAX && combine.width <= static_cast<std::int64_t>(kThreads) * 65535,
      "[all2all_batched] combine of ", combine.num_tokens, " rows of width ", combine.width);
  DeviceGuard guard(device);
  const dim3 grid(static_cast<unsigned>(combine.num_tokens),
                  static_cast<unsigned>((combine.width + kThreads - 1) / kThreads));
  combine_kernel<<<grid, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      combine, element_type(combine.rows_dtype), element_type(combine.out_dtype));
  FUSEDMOE_CUDA_CHECK_LAUNCH();
}

bool stream_is_capturing(int device, StreamHandle stream) {
  DeviceGuard guard(device);
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  FUSEDMOE_CUDA_CHECK(cudaStreamIsCapturing(static_cast<cudaStream_t>(stream), &status));
  return status != cudaStreamCaptureStatusNone;
}

}  // namespace fusedmoe::cuda
