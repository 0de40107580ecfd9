// Pseudo-random bf16 operands for the benchmark's GEMM ceiling. The H100's tensor cores are power-limited
// and their draw depends on the data: cuBLAS multiplied zero matrices at 885 TFLOP/s there, matrices of
// random values at a sustained rate well below it, and no MoE layer runs on zeros
// (bench/results/2026-11-27-h100-session9.md).
#include <cuda_bf16.h>

#include <cstdint>

#include "backends/cuda_common/cuda_check.hpp"
#include "backends/cuda_common/device_bench.hpp"

namespace fusedmoe::cuda {

namespace {

// A 32-bit mix of (index, seed) (the lowbias32 finaliser): uniform bits, no state.
__device__ __forceinline__ std::uint32_t mix32(std::uint32_t value) {
  value ^= value >> 16;
  value *= 0x7feb352du;
  value ^= value >> 15;
  value *= 0x846ca68bu;
  value ^= value >> 16;
  return value;
}

__global__ void fill_uniform_bf16_kernel(__nv_bfloat16* buffer, std::int64_t count, std::uint32_t seed) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride) {
    const std::uint32_t bits =
        mix32(static_cast<std::uint32_t>(i) ^ mix32(static_cast<std::uint32_t>(i >> 32) + seed));
    // [-1, 1 - 2^-23] in fp32; rounding to bf16 can reach 1.
    buffer[i] = __float2bfloat16(static_cast<float>(bits >> 8) * (2.0f / 16777216.0f) - 1.0f);
  }
}

}  // namespace

void fill_uniform_bf16(void* buffer, std::int64_t count, std::uint32_t seed, StreamHandle stream) {
  fill_uniform_bf16_kernel<<<1024, 256, 0, static_cast<cudaStream_t>(stream)>>>(
      static_cast<__nv_bfloat16*>(buffer), count, seed);
  FUSEDMOE_CUDA_CHECK_LAUNCH();
}

}  // namespace fusedmoe::cuda
