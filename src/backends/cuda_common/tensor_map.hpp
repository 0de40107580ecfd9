// TMA tensor maps (Hopper+) for the kernels that load tiles with cp.async.bulk.tensor. Encoded on the host
// through the driver's cuTensorMapEncodeTiled, reached by cudaGetDriverEntryPointByVersion so that nothing
// links libcuda directly. Includes cuda.h: only code under src/backends/cuda_*/ includes it.
#pragma once

#include <cuda.h>

#include <cstdint>

namespace fusedmoe::cuda {

// A bf16 tensor of `matrices` row-major matrices [rows, columns] (row pitch `row_pitch` elements, matrix
// pitch `matrix_pitch` elements), read in boxes of box_columns x box_rows of one matrix, stored in shared
// memory in the 128-byte swizzle (box_columns * 2 must be 128). Boxes overhanging the tensor read as zeros.
// Throws CudaError when the driver refuses the map (alignment, pitches, sizes), saying which.
CUtensorMap bf16_matrices_tensor_map(const void* base, std::int64_t columns, std::int64_t rows,
                                     std::int64_t matrices, std::int64_t row_pitch, std::int64_t matrix_pitch,
                                     int box_columns, int box_rows);

}  // namespace fusedmoe::cuda
