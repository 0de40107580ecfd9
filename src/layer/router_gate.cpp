#include "layer/router_gate.hpp"

#include "core/elements.hpp"
#include "core/threading.hpp"

namespace fusedmoe {

void linear_fp32(const TensorView& hidden, const TensorView& weight, const TensorView& out, int num_threads) {
  const std::int64_t num_tokens = hidden.size(0);
  const std::int64_t hidden_size = hidden.size(1);
  const std::int64_t rows = weight.size(0);
  const float* weights = weight.data_as<const float>();
  float* result = out.data_as<float>();
  parallel_for(num_tokens * rows, num_threads, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t index = begin; index < end; ++index) {
      const std::int64_t token = index / rows;
      const float* w = weights + (index % rows) * hidden_size;
      float sum = 0.0f;
      for (std::int64_t column = 0; column < hidden_size; ++column) {
        sum += w[column] * load_element(hidden.data(), hidden.dtype(), token * hidden_size + column);
      }
      result[index] = sum;
    }
  });
}

}  // namespace fusedmoe
