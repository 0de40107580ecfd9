// An fp64 MoE written independently of every backend: the truth `fusedmoe check` and the tests
// compare against. Slow, plain loops; no rounding anywhere.
#pragma once

#include <vector>

#include "fusedmoe/config.hpp"
#include "fusedmoe/tensor.hpp"
#include "fusedmoe/weights.hpp"

namespace fusedmoe {

// Returns out [M * H] in fp64 for given routing (topk_ids [M, k] int32, topk_weights [M, k] fp32):
// sum_k w * W2 act(W1 x, W3 x) over experts that are local under expert_map (undefined = all),
// plus shared experts (with their sigmoid gate) when the config has them. Weight-on-input recipes
// scale x by the weight instead of the output.
std::vector<double> fp64_moe_reference(const MoeConfig& config, const MoeWeights& weights,
                                       const TensorView& hidden, const TensorView& topk_ids,
                                       const TensorView& topk_weights, const TensorView& expert_map = {});

}  // namespace fusedmoe
