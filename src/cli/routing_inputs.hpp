// The fixed-seed routing `fusedmoe bench` and `fusedmoe tune` time with.
#pragma once

#include <cstdint>

#include "fusedmoe/tensor.hpp"

namespace fusedmoe::cli {

// Top-k ids and weights, uniform over distinct experts (fixed seed); `skewed` sends every token's first
// choice to expert 0 (a hot expert).
void make_routing(std::int64_t tokens, std::int64_t experts, int top_k, bool skewed, std::uint64_t seed,
                  const Tensor& ids, const Tensor& weights);

// Router logits [M, E] fp32 for monolithic backends, which route themselves: each token's ids [M, k] get the
// top logits, in slot order, the other experts 0. Recipes without groups then select exactly those ids.
void make_router_logits(const Tensor& ids, std::int64_t experts, const Tensor& logits);

}  // namespace fusedmoe::cli
