#include "backends/cpu_reference/expert_mlp.hpp"

#include <cmath>

#include "core/check.hpp"
#include "core/elements.hpp"

namespace fusedmoe {

namespace {

template <DType kDType>
float dot_typed(const void* row, const float* x, std::int64_t count) {
  float sum = 0.0f;
  if constexpr (kDType == DType::fp32) {
    const auto* values = static_cast<const float*>(row);
    for (std::int64_t index = 0; index < count; ++index) sum += values[index] * x[index];
  } else {
    const auto* values = static_cast<const std::uint16_t*>(row);
    for (std::int64_t index = 0; index < count; ++index) {
      const float value = kDType == DType::bf16 ? bf16_to_float(values[index]) : fp16_to_float(values[index]);
      sum += value * x[index];
    }
  }
  return sum;
}

float dot(const void* row, DType dtype, const float* x, std::int64_t count) {
  switch (dtype) {
    case DType::bf16:
      return dot_typed<DType::bf16>(row, x, count);
    case DType::fp16:
      return dot_typed<DType::fp16>(row, x, count);
    default:
      return dot_typed<DType::fp32>(row, x, count);
  }
}

float activate(Activation activation, float gate) {
  if (activation == Activation::silu) return gate / (1.0f + std::exp(-gate));
  return 0.5f * gate * (1.0f + std::erf(gate * 0.70710678118654752f));
}

}  // namespace

ExpertMlp::ExpertMlp(const CanonicalExpertWeights& weights, Activation activation, DType act_dtype)
    : weights_(weights),
      activation_(activation),
      act_dtype_(act_dtype),
      num_local_experts_(weights.w13.size(0)),
      hidden_size_(weights.w13.size(2)),
      intermediate_size_(weights.w2.size(2)) {}

void ExpertMlp::run(std::int64_t local_expert, std::span<const float> x, std::span<float> out,
                    std::span<float> scratch) const {
  FUSEDMOE_ASSERT(local_expert >= 0 && local_expert < num_local_experts_);
  const DType weight_dtype = weights_.w13.dtype();
  const std::size_t element = dtype_size(weight_dtype);
  const auto* w13 = static_cast<const char*>(weights_.w13.data()) +
                    static_cast<std::size_t>(local_expert * 2 * intermediate_size_ * hidden_size_) * element;
  const auto* w2 = static_cast<const char*>(weights_.w2.data()) +
                   static_cast<std::size_t>(local_expert * hidden_size_ * intermediate_size_) * element;
  const std::size_t row13 = static_cast<std::size_t>(hidden_size_) * element;
  for (std::int64_t column = 0; column < intermediate_size_; ++column) {
    const float gate = dot(w13 + column * row13, weight_dtype, x.data(), hidden_size_);
    const float up = dot(w13 + (intermediate_size_ + column) * row13, weight_dtype, x.data(), hidden_size_);
    scratch[column] = round_to(act_dtype_, activate(activation_, gate) * up);
  }
  const std::size_t row2 = static_cast<std::size_t>(intermediate_size_) * element;
  for (std::int64_t column = 0; column < hidden_size_; ++column) {
    out[column] = dot(w2 + column * row2, weight_dtype, scratch.data(), intermediate_size_);
  }
}

const CanonicalExpertWeights& as_canonical(const ExpertWeights& weights, std::string_view backend) {
  const auto* canonical = dynamic_cast<const CanonicalExpertWeights*>(&weights);
  FUSEDMOE_ASSERT(canonical != nullptr, "backend ", backend,
                  " was given weights converted by another backend");
  return *canonical;
}

void load_row(const TensorView& tensor, std::int64_t row, std::span<float> out) {
  const std::int64_t width = static_cast<std::int64_t>(out.size());
  for (std::int64_t column = 0; column < width; ++column) {
    out[column] = load_element(tensor.data(), tensor.dtype(), row * width + column);
  }
}

void store_row(const TensorView& tensor, std::int64_t row, std::span<const float> values) {
  const std::int64_t width = static_cast<std::int64_t>(values.size());
  for (std::int64_t column = 0; column < width; ++column) {
    store_element(tensor.data(), tensor.dtype(), row * width + column, values[column]);
  }
}

}  // namespace fusedmoe
