// Programmatic dependent launch (Hopper and newer): a kernel launched with launch_dependent() may start while
// the kernel before it on the stream is still finishing, so its launch latency and its prologue (weight
// prefetch that does not depend on the previous kernel) overlap that kernel's tail. The contract, kept by
// every kernel launched this way:
//   - wait_for_prior_grids() before reading anything the previous kernel writes (it returns once that kernel
//     has completed and its memory is visible; at once when the launch was an ordinary one);
//   - allow_dependent_grids() only after its own wait_for_prior_grids() (or when it was launched ordinarily),
//     and every block that exits waits first unless it wrote nothing: then a kernel that starts early may
//     read the outputs of the kernels *before* its predecessor without waiting (they completed before the
//     predecessor passed its wait).
// Who triggers early: the align kernels (one small grid), and cuda_fused's mma.sync GEMMs when the whole grid
// is resident at once (one wave): GEMM2's blocks then take only the SM slots GEMM1 leaves free and request
// their first weight stages while GEMM1 streams, and the reduce's blocks are resident when GEMM2 ends. A
// multi-wave GEMM1 (mma.sync, or a one-tile wgmma one) triggers only where GEMM2's grid fills every SM slot:
// GEMM2's first blocks then request their weights in the slots GEMM1's last wave frees, where the DRAM would
// idle (H200: qwen3-30b-a3b M=8 0.8%, olmoe-1b-7b M=8/64 1.4%/1.0%, mixtral-8x7b M=64/256 on wg64_n128
// 0.5%/0.4% faster, session 25). A GEMM2 grid smaller than a wave lands on the SMs that GEMM1 frees first,
// several blocks to an SM while others get none, instead of spread over all of them when it launches onto an
// idle GPU: mixtral-8x7b M=1/8 (GEMM2 grids of 128/576 blocks against 264/792 slots)
// 2.3%/3.2% slower on the H200, 7% on the H100 in session 4 (bench/results/2026-11-28-h200-session24.md).
// A multi-wave GEMM2 lets the reduce launch only when it exits (letting it in early gained nothing). The
// reduce lets its successor launch when it exits. launch_dependent() is an ordinary launch unless the caller
// asks for overlap (FUSEDMOE_CUDA_PDL, read by the Experts) and kernel_waits_for_prior_grids(): compute
// capability 9.0+ and the kernel compiled for it (code JIT-compiled from compute_80 PTX, e.g. an 80-only
// build on an H100, has neither instruction).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

#include "backends/cuda_common/cuda_check.hpp"

namespace fusedmoe::cuda {

__device__ __forceinline__ void wait_for_prior_grids() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void allow_dependent_grids() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// kernel<<<grid, block, shared_bytes, stream>>>(args...) in clusters of `cluster_x` blocks along x (1: no
// clusters), allowed to overlap the previous kernel's tail when `dependent` and the kernel can wait
// (kernel_waits_for_prior_grids). Checks the launch (and clears the error state it leaves, as
// FUSEDMOE_CUDA_CHECK_LAUNCH does).
template <class... Params, class... Args>
void launch_dependent_clusters(void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t shared_bytes,
                               cudaStream_t stream, bool dependent, unsigned cluster_x, Args&&... args) {
  cudaLaunchAttribute attributes[2]{};
  unsigned count = 0;
  if (dependent && kernel_waits_for_prior_grids(reinterpret_cast<const void*>(kernel))) {
    attributes[count].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attributes[count].val.programmaticStreamSerializationAllowed = 1;
    ++count;
  }
  if (cluster_x > 1) {
    attributes[count].id = cudaLaunchAttributeClusterDimension;
    attributes[count].val.clusterDim.x = cluster_x;
    attributes[count].val.clusterDim.y = 1;
    attributes[count].val.clusterDim.z = 1;
    ++count;
  }
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  config.attrs = attributes;
  config.numAttrs = count;
  const cudaError_t status = cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    throw_cuda_error(status, "cudaLaunchKernelEx", __FILE__, __LINE__);
  }
}

// launch_dependent_clusters without clusters.
template <class... Params, class... Args>
void launch_dependent(void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t shared_bytes,
                      cudaStream_t stream, bool dependent, Args&&... args) {
  launch_dependent_clusters(kernel, grid, block, shared_bytes, stream, dependent, 1u,
                            std::forward<Args>(args)...);
}

}  // namespace fusedmoe::cuda
