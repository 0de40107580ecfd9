// Test-only entry point: what decode's L2 warm-up (backends/cuda_fused/kernels/l2_warm_up.cuh) guesses as
// the expert of each GEMM1 row block, so a test can hold it against the align step's block_expert.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backends/cuda_fused/kernels/launch.hpp"

namespace fusedmoe::testing {

// out[b] = warm_up_expert(warm, b) for b < blocks (device memory), one warp per row block; synchronises.
cudaError_t warm_up_experts(const cuda_fused::L2WarmUp& warm, int blocks, std::int32_t* out);

}  // namespace fusedmoe::testing
