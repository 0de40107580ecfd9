// Element types and the scalar conversions between them (round to nearest even).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace fusedmoe {

enum class DType { bf16, fp16, fp32, int32, int64, uint8 };

std::size_t dtype_size(DType dtype);
std::string_view to_string(DType dtype);
// Parses "bf16", "fp16", "fp32", "int32", "int64", "uint8"; throws InvalidArgument otherwise.
DType parse_dtype(std::string_view name);
bool is_floating(DType dtype);

// bfloat16 / IEEE half stored as their bit patterns. Conversions to them round to nearest even,
// keep NaN a (quiet) NaN and overflow to infinity.
std::uint16_t float_to_bf16(float value);
float bf16_to_float(std::uint16_t bits);
std::uint16_t float_to_fp16(float value);
float fp16_to_float(std::uint16_t bits);

// Converts `count` elements between any two floating dtypes (bf16, fp16, fp32).
void convert_elements(const void* src, DType src_dtype, void* dst, DType dst_dtype, std::size_t count);

}  // namespace fusedmoe
