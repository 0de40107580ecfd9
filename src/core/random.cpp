#include "core/random.hpp"

#include <cmath>
#include <limits>

#include "core/check.hpp"
#include "core/threading.hpp"

namespace fusedmoe {

namespace {
double unit_interval(std::uint64_t bits) {
  return (static_cast<double>(bits >> 11) + 0.5) * 0x1.0p-53;
}

template <class Generate>
void fill(const TensorView& tensor, Generate&& generate) {
  FUSEDMOE_CHECK(tensor.device().is_cpu() && is_floating(tensor.dtype()),
                 "[random] expected a CPU floating tensor, got ", tensor.describe());
  const std::int64_t count = tensor.numel();
  parallel_for(count, resolve_num_threads({}), [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t index = begin; index < end; ++index) {
      const float value = generate(static_cast<std::uint64_t>(index));
      switch (tensor.dtype()) {
        case DType::bf16:
          tensor.data_as<std::uint16_t>()[index] = float_to_bf16(value);
          break;
        case DType::fp16:
          tensor.data_as<std::uint16_t>()[index] = float_to_fp16(value);
          break;
        default:
          tensor.data_as<float>()[index] = value;
          break;
      }
    }
  });
}
}  // namespace

void fill_normal(const TensorView& tensor, std::uint64_t seed, float stddev) {
  const std::uint64_t key = mix64(seed);
  fill(tensor, [&](std::uint64_t index) {
    const double u1 = unit_interval(mix64(key ^ (2 * index)));
    const double u2 = unit_interval(mix64(key ^ (2 * index + 1)));
    return static_cast<float>(stddev * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  });
}

void fill_uniform(const TensorView& tensor, std::uint64_t seed, float low, float high) {
  const std::uint64_t key = mix64(seed);
  fill(tensor, [&](std::uint64_t index) {
    return static_cast<float>(low + (high - low) * unit_interval(mix64(key ^ index)));
  });
}

void fill_nan(const TensorView& tensor) {
  fill(tensor, [](std::uint64_t) { return std::numeric_limits<float>::quiet_NaN(); });
}

}  // namespace fusedmoe
