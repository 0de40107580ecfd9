// The one CUTLASS grouped GEMM cuda_cutlass_grouped runs (both expert GEMMs), behind a plain C++ interface:
// only sm90_grouped_gemm.cu includes CUTLASS.
#pragma once

#include <cstddef>
#include <cstdint>

#include "fusedmoe/device.hpp"

namespace fusedmoe::cuda_cutlass_grouped {

// For every group g (a local expert) with rows [offsets[g], offsets[g + 1]) of a:
//   d[offsets[g] .. offsets[g + 1], :] = a[offsets[g] .. offsets[g + 1], :] . b[g]^T
// a [rows, k] bf16 row-major, b [groups, n, k] bf16 row-major (the canonical weight layout), d [rows, n] bf16
// row-major, fp32 accumulation. n and k are multiples of 8 and every pointer is 16-byte aligned (TMA).
// Groups with no rows are zero-size problems. The problem sizes, pointers and strides are written on the
// device from `offsets` (nothing is read back), so a call can be captured in a CUDA graph.
struct GroupedGemm {
  int num_groups = 0;
  const std::int64_t* offsets = nullptr;  // device [num_groups + 1]
  const void* a = nullptr;
  const void* b = nullptr;
  void* d = nullptr;
  std::int64_t n = 0, k = 0;
  void* arguments = nullptr;  // device, grouped_gemm_arguments_bytes(num_groups): sizes, pointers, strides
  void* workspace = nullptr;  // device, grouped_gemm_workspace_bytes(num_groups, sm_count)
  int device_index = 0;
  int sm_count = 0;
};

std::size_t grouped_gemm_arguments_bytes(int num_groups);
std::size_t grouped_gemm_workspace_bytes(int num_groups, int sm_count);

// Enqueues the setup kernel and the grouped GEMM on `stream`; throws fusedmoe::CudaError or Unsupported.
void run_grouped_gemm(const GroupedGemm& gemm, StreamHandle stream);

}  // namespace fusedmoe::cuda_cutlass_grouped
