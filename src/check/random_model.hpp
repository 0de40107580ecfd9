// Deterministic random weights and inputs for a config (the CLI's built-in model, benchmarks, tests).
#pragma once

#include <cstdint>

#include "fusedmoe/config.hpp"
#include "fusedmoe/tensor.hpp"
#include "fusedmoe/weights.hpp"

namespace fusedmoe {

// Weights scaled so activations stay O(1): w13 uniform with stddev 1/sqrt(H), w2 with 1/sqrt(I); a router
// gate, a correction bias in [0, 0.1) when the routing takes one, and shared experts per the config. CPU
// tensors.
MoeWeights random_weights(const MoeConfig& config, std::uint64_t seed);
// hidden [M, H] ~ N(0, 1) in act_dtype.
Tensor random_hidden(const MoeConfig& config, std::int64_t num_tokens, std::uint64_t seed);

}  // namespace fusedmoe
