// What the mma.sync and the wgmma launchers share: the kernels' parameter blocks built from the launch
// arguments (the same for every tile but block_k), and the grid check.
#pragma once

#include <cuda_runtime.h>
#include <cstdint>

#include "backends/cuda_fused/kernels/launch.hpp"
#include "backends/cuda_fused/kernels/sm80_bf16_grouped_gemm.cuh"
#include "backends/cuda_fused/kernels/weight_panels.cuh"
#include "core/check.hpp"

namespace fusedmoe::cuda_fused {

inline Gemm1Params gemm1_params(const Gemm1Launch& args, int block_k) {
  return Gemm1Params{.hidden = static_cast<const bf16*>(args.hidden),
                     .lda = args.lda,
                     .a_columns = args.a_columns,
                     .w13 = static_cast<const bf16*>(args.w13),
                     .weight_depth = args.weight_depth,
                     .panel_stride = panel_stride(2 * args.intermediate_padded),
                     .expert_stride = 2 * args.intermediate_padded * args.weight_depth,
                     .sorted_ids = args.sorted_ids,
                     .block_expert = args.block_expert,
                     .top_k = args.top_k,
                     .k_tiles = static_cast<int>((args.a_columns + block_k - 1) / block_k),
                     .trigger_dependents_early = false,
                     .intermediate = static_cast<bf16*>(args.intermediate),
                     .ldi = args.intermediate_padded,
                     .activation = args.activation,
                     .warm = args.warm,
                     .write_padding_warps = args.write_padding_warps,
                     .async_signal = args.async_signal,
                     .raster = Raster{.block_runs = args.block_runs, .group_rows = args.raster_rows}};
}

inline Gemm2Params gemm2_params(const Gemm2Launch& args, int block_k) {
  return Gemm2Params{.intermediate = static_cast<const bf16*>(args.intermediate),
                     .lda = args.intermediate_padded,
                     .w2 = static_cast<const bf16*>(args.w2),
                     .weight_depth = args.intermediate_padded,
                     .panel_stride = panel_stride(args.hidden_padded),
                     .expert_stride = args.hidden_padded * args.intermediate_padded,
                     .sorted_ids = args.sorted_ids,
                     .block_expert = args.block_expert,
                     .topk_weights = args.topk_weights,
                     .k_tiles = static_cast<int>((args.intermediate_padded + block_k - 1) / block_k),
                     .trigger_dependents_early = false,
                     .out_rows = static_cast<bf16*>(args.out_rows),
                     .ldo = args.pitch,
                     .out_columns = args.hidden,
                     .async_signal = args.async_signal,
                     .raster = Raster{.block_runs = args.block_runs, .group_rows = args.raster_rows}};
}

// Row blocks on x (up to 2^31 - 1), column blocks on y (up to 65535).
inline dim3 gemm_grid(std::int64_t max_blocks, std::int64_t column_blocks) {
  FUSEDMOE_CHECK(max_blocks <= INT32_MAX && column_blocks <= 65535, "[cuda_fused] grid [", max_blocks, ", ",
                 column_blocks, "] exceeds one launch");
  return dim3(static_cast<unsigned>(max_blocks), static_cast<unsigned>(column_blocks));
}

}  // namespace fusedmoe::cuda_fused
