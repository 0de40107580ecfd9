// Host encoding of TMA tensor maps (see tensor_map.hpp).
#include "backends/cuda_common/tensor_map.hpp"

#include <cudaTypedefs.h>  // PFN_cuTensorMapEncodeTiled

#include "backends/cuda_common/cuda_check.hpp"
#include "core/check.hpp"

#if CUDART_VERSION < 12050
#error "fusedmoe's TMA tensor maps need CUDA 12.5 or newer (cudaGetDriverEntryPointByVersion)"
#endif

namespace fusedmoe::cuda {

namespace {

// The driver's name for a CUresult ("CUDA_ERROR_INVALID_VALUE"), or "?" when the driver has no
// cuGetErrorName.
const char* driver_error_name(CUresult result) {
  static const PFN_cuGetErrorName_v6000 function = [] {
    void* pointer = nullptr;
    cudaDriverEntryPointQueryResult found{};
    const cudaError_t status =
        cudaGetDriverEntryPointByVersion("cuGetErrorName", &pointer, 6000, cudaEnableDefault, &found);
    return status == cudaSuccess && found == cudaDriverEntryPointSuccess
               ? reinterpret_cast<PFN_cuGetErrorName_v6000>(pointer)
               : nullptr;
  }();
  const char* name = nullptr;
  if (function == nullptr || function(result, &name) != CUDA_SUCCESS || name == nullptr) return "?";
  return name;
}

PFN_cuTensorMapEncodeTiled_v12000 encode_function() {
  static const PFN_cuTensorMapEncodeTiled_v12000 function = [] {
    void* pointer = nullptr;
    cudaDriverEntryPointQueryResult found{};
    FUSEDMOE_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &pointer, 12000,
                                                         cudaEnableDefault, &found));
    if (found != cudaDriverEntryPointSuccess || pointer == nullptr) {
      throw CudaError(
          "[cuda] the driver has no cuTensorMapEncodeTiled (TMA needs a CUDA 12+ driver on Hopper or newer)");
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(pointer);
  }();
  return function;
}

// Encodes a bf16 map whose innermost dimension comes first, in the swizzle of its box's row bytes (boxes 64
// elements wide: 128-byte swizzle; 32 wide: 64-byte); the error gives the driver's reason and `describe()`
// (called only on failure), the tensor.
template <int kRank, class Describe>
CUtensorMap encode_bf16_swizzled(const void* base, const cuuint64_t (&sizes)[kRank],
                                 const cuuint64_t (&strides)[kRank - 1], const cuuint32_t (&box)[kRank],
                                 const Describe& describe) {
  FUSEDMOE_CHECK(box[0] == 64 || box[0] == 32, "[cuda] a swizzled bf16 box is 64 or 32 wide, not ", box[0]);
  const CUtensorMapSwizzle swizzle = box[0] == 64 ? CU_TENSOR_MAP_SWIZZLE_128B : CU_TENSOR_MAP_SWIZZLE_64B;
  cuuint32_t element_strides[kRank];
  for (int i = 0; i < kRank; ++i) element_strides[i] = 1;
  CUtensorMap map{};
  const CUresult result =
      encode_function()(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, kRank, const_cast<void*>(base), sizes,
                        strides, box, element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle,
                        CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (result != CUDA_SUCCESS) {
    throw CudaError(str_cat("[cuda] cuTensorMapEncodeTiled failed (", driver_error_name(result),
                            ", CUresult ", static_cast<int>(result), ") for ", describe()));
  }
  return map;
}

}  // namespace

CUtensorMap bf16_panels_tensor_map(const void* base, std::int64_t rows, std::int64_t depth,
                                   std::int64_t matrices, int box_rows) {
  constexpr std::int64_t kBytes = 2, kPanel = 64;  // a 128-byte-swizzled box is 64 bf16 wide
  FUSEDMOE_CHECK(box_rows >= 1 && box_rows <= 256, "[cuda] a TMA box has 1 to 256 rows, not ", box_rows);
  FUSEDMOE_CHECK(rows >= 1 && matrices >= 1 && depth >= kPanel && depth % kPanel == 0,
                 "[cuda] tensor map of ", matrices, " x [", rows, ", ", depth,
                 "] in k-panels: needs at least one row and matrix and a depth that is a multiple of 64");
  FUSEDMOE_CHECK(reinterpret_cast<std::uintptr_t>(base) % 16 == 0, "[cuda] TMA needs a 16-byte-aligned base");
  // Innermost first: column within a panel, row, panel, matrix.
  const cuuint64_t sizes[4] = {static_cast<cuuint64_t>(kPanel), static_cast<cuuint64_t>(rows),
                               static_cast<cuuint64_t>(depth / kPanel), static_cast<cuuint64_t>(matrices)};
  const cuuint64_t strides[3] = {static_cast<cuuint64_t>(kPanel * kBytes),
                                 static_cast<cuuint64_t>(rows * kPanel * kBytes),
                                 static_cast<cuuint64_t>(rows * depth * kBytes)};
  const cuuint32_t box[4] = {static_cast<cuuint32_t>(kPanel), static_cast<cuuint32_t>(box_rows), 1, 1};
  return encode_bf16_swizzled<4>(base, sizes, strides, box, [&] {
    return str_cat(matrices, " x [", rows, ", ", depth, "] bf16 in k-panels, box ", box_rows, " rows x 64");
  });
}

CUtensorMap bf16_rows_tensor_map(const void* base, std::int64_t rows, std::int64_t columns,
                                 std::int64_t pitch, int box_rows, int box_columns) {
  constexpr std::int64_t kBytes = 2;
  FUSEDMOE_CHECK(box_rows >= 1 && box_rows <= 256, "[cuda] a TMA box has 1 to 256 rows, not ", box_rows);
  FUSEDMOE_CHECK(box_columns == 64 || box_columns == 32,
                 "[cuda] a swizzled row box is 64 (128-byte swizzle) or 32 (64-byte) bf16 wide, not ",
                 box_columns);
  FUSEDMOE_CHECK(rows >= 1 && columns >= 1 && pitch >= columns && pitch % 8 == 0, "[cuda] tensor map of [",
                 rows, ", ", columns, "] bf16 with pitch ", pitch,
                 ": needs a row and a column, and a pitch of at least the columns that is a multiple of 8");
  FUSEDMOE_CHECK(reinterpret_cast<std::uintptr_t>(base) % 16 == 0, "[cuda] TMA needs a 16-byte-aligned base");
  const cuuint64_t sizes[2] = {static_cast<cuuint64_t>(columns), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(pitch * kBytes)};
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(box_columns), static_cast<cuuint32_t>(box_rows)};
  return encode_bf16_swizzled<2>(base, sizes, strides, box, [&] {
    return str_cat("[", rows, ", ", columns, "] bf16 with pitch ", pitch, ", box ", box_rows, " rows x ",
                   box_columns);
  });
}

}  // namespace fusedmoe::cuda
