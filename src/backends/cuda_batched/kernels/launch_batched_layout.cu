// Host side of cuda_batched's layout kernels: grid sizes and launch checks.
#include <algorithm>

#include "backends/cuda_batched/kernels/batched_layout.cuh"
#include "backends/cuda_batched/kernels/launch.hpp"
#include "backends/cuda_common/cuda_check.hpp"
#include "core/check.hpp"

namespace fusedmoe::cuda_batched {

namespace {

constexpr int kThreads = 256;

unsigned grid_stride_blocks(std::int64_t count) {
  return static_cast<unsigned>(std::clamp<std::int64_t>((count + kThreads - 1) / kThreads, 1, 65536));
}

// One block per slot: grid.x holds up to 2^31 - 1 blocks (the caller checks E_local * capacity fits int32).
dim3 slot_grid(std::int64_t num_local_experts, std::int64_t capacity) {
  const std::int64_t slots = num_local_experts * capacity;
  FUSEDMOE_ASSERT(slots > 0 && slots <= INT32_MAX, "[cuda_batched] ", slots, " slots in one launch");
  return dim3(static_cast<unsigned>(slots));
}

// Threads per row-copy block: enough for the row, a whole number of warps, at most kThreads.
unsigned row_threads(std::int64_t columns) {
  return static_cast<unsigned>(std::clamp<std::int64_t>((columns + 31) / 32 * 32, 32, kThreads));
}

}  // namespace

void launch_batched_align(const BatchedAlignLaunch& args, StreamHandle stream_handle) {
  const std::int64_t rows = args.num_local_experts * args.blocks_per_expert * args.block_m;
  if (rows == 0) return;
  const BatchedAlignParams params{.counts = args.counts,
                                  .num_local_experts = args.num_local_experts,
                                  .capacity = args.capacity,
                                  .block_m = args.block_m,
                                  .blocks_per_expert = args.blocks_per_expert,
                                  .sorted_ids = args.sorted_ids,
                                  .block_expert = args.block_expert,
                                  .unit_weights = args.unit_weights};
  batched_align_kernel<<<grid_stride_blocks(rows), kThreads, 0, static_cast<cudaStream_t>(stream_handle)>>>(
      params);
  FUSEDMOE_CUDA_CHECK_LAUNCH();
}

void launch_batched_pad_rows(const void* hidden, const std::int32_t* counts, std::int64_t num_local_experts,
                             std::int64_t capacity, std::int64_t columns, void* padded, std::int64_t pitch,
                             StreamHandle stream_handle) {
  batched_pad_rows_kernel<<<slot_grid(num_local_experts, capacity), row_threads(pitch), 0,
                            static_cast<cudaStream_t>(stream_handle)>>>(
      static_cast<const __nv_bfloat16*>(hidden), counts, capacity, columns,
      static_cast<__nv_bfloat16*>(padded), pitch);
  FUSEDMOE_CUDA_CHECK_LAUNCH();
}

void launch_batched_copy_out(const void* rows, std::int64_t pitch, const std::int32_t* counts,
                             std::int64_t num_local_experts, std::int64_t capacity, std::int64_t columns,
                             void* out, StreamHandle stream_handle) {
  batched_copy_out_kernel<<<slot_grid(num_local_experts, capacity), row_threads(columns), 0,
                            static_cast<cudaStream_t>(stream_handle)>>>(
      static_cast<const __nv_bfloat16*>(rows), pitch, counts, capacity, columns,
      static_cast<__nv_bfloat16*>(out));
  FUSEDMOE_CUDA_CHECK_LAUNCH();
}

}  // namespace fusedmoe::cuda_batched
