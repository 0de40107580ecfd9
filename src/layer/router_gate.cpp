#include "layer/router_gate.hpp"

#include <algorithm>

#include "core/elements.hpp"
#include "core/threading.hpp"

namespace fusedmoe {

void linear_fp32(const TensorView& hidden, const TensorView& weight, const TensorView& out, int num_threads) {
  const std::int64_t num_tokens = hidden.size(0);
  const std::int64_t hidden_size = hidden.size(1);
  const std::int64_t rows = weight.size(0);
  const float* weights = weight.data_as<const float>();
  float* result = out.data_as<float>();
  constexpr std::int64_t kSlice = 256;  // hidden columns converted to fp32 at a time (on the stack)
  parallel_for(num_tokens, num_threads, [&](std::int64_t begin, std::int64_t end) {
    float x[kSlice];
    for (std::int64_t token = begin; token < end; ++token) {
      float* out = result + token * rows;
      std::fill(out, out + rows, 0.0f);
      for (std::int64_t column0 = 0; column0 < hidden_size; column0 += kSlice) {
        const std::int64_t width = std::min(kSlice, hidden_size - column0);
        for (std::int64_t c = 0; c < width; ++c) {
          x[c] = load_element(hidden.data(), hidden.dtype(), token * hidden_size + column0 + c);
        }
        for (std::int64_t row = 0; row < rows; ++row) {
          const float* w = weights + row * hidden_size + column0;
          float sum = 0.0f;
          for (std::int64_t c = 0; c < width; ++c) sum += w[c] * x[c];
          out[row] += sum;
        }
      }
    }
  });
}

}  // namespace fusedmoe
