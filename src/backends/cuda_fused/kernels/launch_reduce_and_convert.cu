// Host side of the reduce over top-k, the weight conversion and the row padding.
#include <algorithm>

#include "backends/cuda_common/cuda_check.hpp"
#include "backends/cuda_fused/kernels/launch.hpp"
#include "backends/cuda_fused/kernels/reduce_and_convert.cuh"
#include "core/check.hpp"

namespace fusedmoe::cuda_fused {

namespace {
constexpr int kThreads = 256;

// A grid-stride launch: enough blocks to fill the GPU, capped.
unsigned grid_stride_blocks(std::int64_t count) {
  return static_cast<unsigned>(std::clamp<std::int64_t>((count + kThreads - 1) / kThreads, 1, 65536));
}
}  // namespace

void launch_reduce(const ReduceLaunch& args, StreamHandle stream_handle) {
  if (args.num_tokens == 0) return;
  const ReduceParams params{
      .rows = static_cast<const __nv_bfloat16*>(args.rows),
      .pitch = args.pitch,
      .topk_ids = args.topk_ids,
      .expert_map = args.expert_map,
      .num_experts = args.num_experts,
      .num_local_experts = args.num_local_experts,
      .top_k = args.top_k,
      .num_tokens = args.num_tokens,
      .hidden = args.hidden,
      .out = static_cast<__nv_bfloat16*>(args.out),
      .vector_store = args.hidden % 8 == 0 && reinterpret_cast<std::uintptr_t>(args.out) % 16 == 0,
      .pair_positions = args.pair_positions,
  };
  // Row indices are int32 in the kernel: pairs and sorted rows both stay below 2^31 (cuda_fused checks M * k,
  // the sorted rows' TMA coordinates are int32 too).
  FUSEDMOE_CHECK(args.num_tokens * args.top_k <= INT32_MAX, "[cuda_fused] reduce over ",
                 args.num_tokens * args.top_k, " pairs: expected at most 2^31 - 1");
  // Persistent blocks: no more than the SMs hold at once (each walks the items with a grid stride).
  const std::int64_t items = args.num_tokens * (args.pitch / 8);
  const std::int64_t resident =
      cuda::resident_blocks(reinterpret_cast<const void*>(reduce_topk_kernel), kReduceThreads, 0);
  const std::int64_t blocks = std::clamp<std::int64_t>((items + kReduceThreads - 1) / kReduceThreads, 1,
                                                       std::max<std::int64_t>(resident, 1));
  cuda::launch_dependent(reduce_topk_kernel, dim3(static_cast<unsigned>(blocks)), dim3(kReduceThreads), 0,
                         static_cast<cudaStream_t>(stream_handle), args.dependent_launch, params);
}

void launch_pad_rows(const void* source, std::int64_t num_rows, std::int64_t columns, void* destination,
                     std::int64_t pitch, StreamHandle stream_handle) {
  if (num_rows == 0) return;
  pad_rows_kernel<<<grid_stride_blocks(num_rows * pitch), kThreads, 0,
                    static_cast<cudaStream_t>(stream_handle)>>>(
      static_cast<const __nv_bfloat16*>(source), num_rows, columns, static_cast<__nv_bfloat16*>(destination),
      pitch);
  FUSEDMOE_CUDA_CHECK_LAUNCH();
}

void launch_convert_w13(const void* source, std::int64_t intermediate, std::int64_t hidden, void* destination,
                        std::int64_t intermediate_padded, std::int64_t depth, StreamHandle stream_handle) {
  convert_w13_kernel<<<grid_stride_blocks(2 * intermediate_padded * depth), kThreads, 0,
                       static_cast<cudaStream_t>(stream_handle)>>>(
      static_cast<const __nv_bfloat16*>(source), intermediate, hidden,
      static_cast<__nv_bfloat16*>(destination), intermediate_padded, depth);
  FUSEDMOE_CUDA_CHECK_LAUNCH();
}

void launch_convert_w2(const void* source, std::int64_t hidden, std::int64_t intermediate, void* destination,
                       std::int64_t hidden_padded, std::int64_t intermediate_padded,
                       StreamHandle stream_handle) {
  convert_w2_kernel<<<grid_stride_blocks(hidden_padded * intermediate_padded), kThreads, 0,
                      static_cast<cudaStream_t>(stream_handle)>>>(
      static_cast<const __nv_bfloat16*>(source), hidden, intermediate,
      static_cast<__nv_bfloat16*>(destination), hidden_padded, intermediate_padded);
  FUSEDMOE_CUDA_CHECK_LAUNCH();
}

}  // namespace fusedmoe::cuda_fused
