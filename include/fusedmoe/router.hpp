// The router: router logits [M, E] -> topk_ids [M, k] int32 and topk_weights [M, k] fp32.
//
// Ordering: each row's k entries are sorted by selection score, best first; equal scores go to the
// lower expert id, equal group scores to the lower group id.
// Non-finite logits have a defined result: NaN counts as -FLT_MAX and +/-inf as +/-FLT_MAX before
// scoring, so ids are always in [0, E) and weights are finite.
#pragma once

#include <cstdint>

#include "fusedmoe/config.hpp"
#include "fusedmoe/tensor.hpp"

namespace fusedmoe {

// logits: [M, E] fp32, bf16 or fp16. correction_bias: [E] fp32, required by
// sigmoid_grouped_bias when routing.use_correction_bias, otherwise undefined. All tensors live on one
// device: the CPU, or a CUDA device (then it runs on context.stream without waiting for it, with the
// same ids, order, ties and weights up to float rounding). Throws InvalidArgument on bad shapes, dtypes
// or config.
void route(const TensorView& logits, const RoutingConfig& routing, const TensorView& correction_bias,
           const TensorView& topk_ids, const TensorView& topk_weights, const ExecContext& context = {});

// Checks a routing config against a number of experts (top_k, groups); throws InvalidArgument.
void validate_routing(const RoutingConfig& routing, std::int64_t num_experts);

}  // namespace fusedmoe
