// TMA tensor maps (Hopper+) for the kernels that load tiles with cp.async.bulk.tensor. Encoded on the host
// through the driver's cuTensorMapEncodeTiled, reached by cudaGetDriverEntryPointByVersion so that nothing
// links libcuda directly. Includes cuda.h: only code under src/backends/cuda_*/ includes it.
#pragma once

#include <cuda.h>

#include <cstdint>

namespace fusedmoe::cuda {

// A bf16 tensor of `matrices` contiguous matrices [rows, depth] stored in k-panels (depth / 64 panels of
// [rows][64] each, cuda_fused/kernels/weight_panels.cuh), read in boxes of box_rows x 64 (one panel of one
// matrix), stored in shared memory in the 128-byte swizzle. Rows past `rows` read as zeros. Throws
// CudaError when the driver refuses the map (alignment, sizes), saying which.
CUtensorMap bf16_panels_tensor_map(const void* base, std::int64_t rows, std::int64_t depth,
                                   std::int64_t matrices, int box_rows);

// A row-major bf16 matrix [rows, columns] with `pitch` elements between rows (a multiple of 8), written or
// read in boxes of box_rows x box_columns: 64 columns in the 128-byte swizzle, or 32 in the 64-byte one.
// Box parts past the last row or column are not stored (and read as zeros). Throws CudaError when the
// driver refuses the map, saying which.
CUtensorMap bf16_rows_tensor_map(const void* base, std::int64_t rows, std::int64_t columns,
                                 std::int64_t pitch, int box_rows, int box_columns = 64);

}  // namespace fusedmoe::cuda
