#include "cuda/warm_up_probe.hpp"

#include "backends/cuda_fused/kernels/l2_warm_up.cuh"

namespace fusedmoe::testing {
namespace {

__global__ void warm_up_experts_kernel(cuda_fused::L2WarmUp warm, std::int32_t* out) {
#if defined(__CUDA_ARCH__)  // l2_warm_up.cuh declares its device functions for device passes only
  const int expert = cuda_fused::warm_up_expert(warm, static_cast<int>(blockIdx.x));
  if (threadIdx.x == 0) out[blockIdx.x] = expert;
#else
  (void)warm, (void)out;
#endif
}

}  // namespace

cudaError_t warm_up_experts(const cuda_fused::L2WarmUp& warm, int blocks, std::int32_t* out) {
  warm_up_experts_kernel<<<blocks, 32>>>(warm, out);
  if (const cudaError_t status = cudaGetLastError(); status != cudaSuccess) return status;
  return cudaDeviceSynchronize();
}

}  // namespace fusedmoe::testing
