// DType metadata and bit-exact bf16 / fp16 conversions (round to nearest even).
#include "fusedmoe/dtype.hpp"

#include <bit>
#include <cmath>
#include <cstring>

#include "core/check.hpp"

namespace fusedmoe {

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::bf16:
    case DType::fp16:
      return 2;
    case DType::fp32:
    case DType::int32:
      return 4;
    case DType::int64:
      return 8;
    case DType::uint8:
      return 1;
  }
  return 0;
}

std::string_view to_string(DType dtype) {
  switch (dtype) {
    case DType::bf16:
      return "bf16";
    case DType::fp16:
      return "fp16";
    case DType::fp32:
      return "fp32";
    case DType::int32:
      return "int32";
    case DType::int64:
      return "int64";
    case DType::uint8:
      return "uint8";
  }
  return "?";
}

DType parse_dtype(std::string_view name) {
  for (DType dtype : {DType::bf16, DType::fp16, DType::fp32, DType::int32, DType::int64, DType::uint8}) {
    if (name == to_string(dtype)) return dtype;
  }
  if (name == "float32" || name == "float") return DType::fp32;
  if (name == "bfloat16") return DType::bf16;
  if (name == "float16" || name == "half") return DType::fp16;
  throw InvalidArgument(
      str_cat("[dtype] unknown dtype '", name, "': expected one of bf16, fp16, fp32, int32, int64, uint8"));
}

bool is_floating(DType dtype) {
  return dtype == DType::bf16 || dtype == DType::fp16 || dtype == DType::fp32;
}

std::uint16_t float_to_bf16(float value) {
  std::uint32_t bits = std::bit_cast<std::uint32_t>(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u)
    return static_cast<std::uint16_t>((bits >> 16) | 0x40u);  // quiet NaN
  const std::uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<std::uint16_t>((bits + rounding) >> 16);
}

float bf16_to_float(std::uint16_t bits) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16);
}

std::uint16_t float_to_fp16(float value) {
  const std::uint32_t bits = std::bit_cast<std::uint32_t>(value);
  const std::uint32_t sign = (bits >> 16) & 0x8000u;
  const std::uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u);   // NaN
  if (magnitude >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // rounds to >= 65536: inf
  if (magnitude < 0x38800000u) {
    // Subnormal half (or zero): value = m * 2^-24 with m rounded to nearest even.
    const float scaled = std::bit_cast<float>(magnitude) * 16777216.0f;  // * 2^24, exact
    const float rounded = std::nearbyint(scaled);                        // current mode: nearest even
    return static_cast<std::uint16_t>(sign | static_cast<std::uint32_t>(rounded));
  }
  // Normal: rebias the exponent (127 -> 15) and round the 23-bit mantissa to 10 bits.
  std::uint32_t half = magnitude - (112u << 23);
  const std::uint32_t rounding = 0xfffu + ((half >> 13) & 1u);
  half = (half + rounding) >> 13;
  return static_cast<std::uint16_t>(sign | half);
}

float fp16_to_float(std::uint16_t bits) {
  const std::uint32_t sign = static_cast<std::uint32_t>(bits & 0x8000u) << 16;
  const std::uint32_t exponent = (bits >> 10) & 0x1fu;
  const std::uint32_t mantissa = bits & 0x3ffu;
  if (exponent == 0) {
    const float value = static_cast<float>(mantissa) * (1.0f / 16777216.0f);  // m * 2^-24
    return std::bit_cast<float>(std::bit_cast<std::uint32_t>(value) | sign);
  }
  if (exponent == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  return std::bit_cast<float>(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

namespace {
float load_float(const void* src, DType dtype, std::size_t index) {
  switch (dtype) {
    case DType::bf16:
      return bf16_to_float(static_cast<const std::uint16_t*>(src)[index]);
    case DType::fp16:
      return fp16_to_float(static_cast<const std::uint16_t*>(src)[index]);
    case DType::fp32:
      return static_cast<const float*>(src)[index];
    default:
      break;
  }
  throw InvalidArgument(
      str_cat("[dtype] cannot convert from ", to_string(dtype), ": expected bf16, fp16 or fp32"));
}
}  // namespace

void convert_elements(const void* src, DType src_dtype, void* dst, DType dst_dtype, std::size_t count) {
  FUSEDMOE_CHECK(is_floating(src_dtype) && is_floating(dst_dtype), "[dtype] convert ", to_string(src_dtype),
                 " -> ", to_string(dst_dtype), ": only bf16, fp16 and fp32 convert");
  if (src_dtype == dst_dtype) {
    std::memcpy(dst, src, count * dtype_size(src_dtype));
    return;
  }
  for (std::size_t index = 0; index < count; ++index) {
    const float value = load_float(src, src_dtype, index);
    switch (dst_dtype) {
      case DType::bf16:
        static_cast<std::uint16_t*>(dst)[index] = float_to_bf16(value);
        break;
      case DType::fp16:
        static_cast<std::uint16_t*>(dst)[index] = float_to_fp16(value);
        break;
      default:
        static_cast<float*>(dst)[index] = value;
        break;
    }
  }
}

}  // namespace fusedmoe
