// Dense helper of the layer: router logits and the shared-experts gate (CPU, fp32 accumulation).
#pragma once

#include "fusedmoe/tensor.hpp"

namespace fusedmoe {

// out[t, r] = sum_h hidden[t, h] * weight[r, h]. hidden [M, H] (any float dtype), weight [R, H] fp32,
// out [M, R] fp32. Allocates nothing.
void linear_fp32(const TensorView& hidden, const TensorView& weight, const TensorView& out, int num_threads);

}  // namespace fusedmoe
