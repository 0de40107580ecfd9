// The fixed-seed routing `fusedmoe bench` and `fusedmoe tune` time with.
#pragma once

#include <cstdint>

#include "fusedmoe/tensor.hpp"

namespace fusedmoe::cli {

// Top-k ids and weights, uniform over distinct experts (fixed seed); `skewed` sends every token's first
// choice to expert 0 (a hot expert).
void make_routing(std::int64_t tokens, std::int64_t experts, int top_k, bool skewed, std::uint64_t seed,
                  const Tensor& ids, const Tensor& weights);

}  // namespace fusedmoe::cli
