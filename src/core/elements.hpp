// Scalar element access for the portable (reference) code paths: load any floating dtype as
// float, store float rounded to nearest even. Fast backends use their own vector code.
#pragma once

#include <cstdint>

#include "fusedmoe/dtype.hpp"

namespace fusedmoe {

inline float load_element(const void* base, DType dtype, std::int64_t index) {
  switch (dtype) {
    case DType::bf16:
      return bf16_to_float(static_cast<const std::uint16_t*>(base)[index]);
    case DType::fp16:
      return fp16_to_float(static_cast<const std::uint16_t*>(base)[index]);
    default:
      return static_cast<const float*>(base)[index];
  }
}

inline void store_element(void* base, DType dtype, std::int64_t index, float value) {
  switch (dtype) {
    case DType::bf16:
      static_cast<std::uint16_t*>(base)[index] = float_to_bf16(value);
      break;
    case DType::fp16:
      static_cast<std::uint16_t*>(base)[index] = float_to_fp16(value);
      break;
    default:
      static_cast<float*>(base)[index] = value;
      break;
  }
}

// Rounds a float to what `dtype` can hold (identity for fp32).
inline float round_to(DType dtype, float value) {
  switch (dtype) {
    case DType::bf16:
      return bf16_to_float(float_to_bf16(value));
    case DType::fp16:
      return fp16_to_float(float_to_fp16(value));
    default:
      return value;
  }
}

}  // namespace fusedmoe
