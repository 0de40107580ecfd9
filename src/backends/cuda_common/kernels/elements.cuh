// Device-side element access shared by the CUDA kernels: floating dtypes as float, and the scalar math
// the router shares with the CPU (so both sides round the same way).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cfloat>
#include <cstdint>

#include "fusedmoe/dtype.hpp"

namespace fusedmoe::cuda {

// The floating dtypes a kernel may be handed, as a plain int for kernel parameters.
enum class ElementType : int { bf16 = 0, fp16 = 1, fp32 = 2 };

inline ElementType element_type(DType dtype) {
  switch (dtype) {
    case DType::bf16:
      return ElementType::bf16;
    case DType::fp16:
      return ElementType::fp16;
    default:
      return ElementType::fp32;
  }
}

__device__ __forceinline__ float load_as_float(const void* base, ElementType type, std::int64_t index) {
  switch (type) {
    case ElementType::bf16:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(base)[index]);
    case ElementType::fp16:
      return __half2float(static_cast<const __half*>(base)[index]);
    default:
      return static_cast<const float*>(base)[index];
  }
}

// Rounds to nearest even, as the CPU's float_to_bf16 / float_to_fp16 do.
__device__ __forceinline__ void store_from_float(void* base, ElementType type, std::int64_t index,
                                                 float value) {
  switch (type) {
    case ElementType::bf16:
      static_cast<__nv_bfloat16*>(base)[index] = __float2bfloat16_rn(value);
      break;
    case ElementType::fp16:
      static_cast<__half*>(base)[index] = __float2half_rn(value);
      break;
    default:
      static_cast<float*>(base)[index] = value;
      break;
  }
}

// NOTE: exp in double, rounded once to float: the correctly rounded expf in all but vanishingly rare
// cases, which is also what glibc's expf returns, so GPU and CPU routing scores agree to the last bit
// almost always (CUDA's own expf may differ by 2 ulp). The router is tiny; the double math is free.
__device__ __forceinline__ float exp_like_cpu(float value) {
  return static_cast<float>(exp(static_cast<double>(value)));
}

// The CPU router's 1 / (1 + exp(-x)) in float, with the same roundings.
__device__ __forceinline__ float sigmoid_like_cpu(float value) {
  return __fdiv_rn(1.0f, __fadd_rn(1.0f, exp_like_cpu(-value)));
}

// NaN -> -FLT_MAX, +/-inf -> +/-FLT_MAX (the router's documented rule).
__device__ __forceinline__ float sanitize(float value) {
  if (value != value) return -FLT_MAX;
  if (value > FLT_MAX) return FLT_MAX;
  if (value < -FLT_MAX) return -FLT_MAX;
  return value;
}

}  // namespace fusedmoe::cuda
