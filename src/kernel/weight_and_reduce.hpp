// The finalize step's arithmetic when the Experts leave weighting and reduction to it (fp32 sums).
#pragma once

#include "fusedmoe/kernel.hpp"

namespace fusedmoe {

// out[t] = sum_k topk_weights[t, k] * expert_out[t, k]   (expert_out [M, k, H], out [M, H])
void weight_and_reduce_standard(const TensorView& expert_out, const TensorView& topk_weights,
                                const TensorView& out, int num_threads);

// out[slot_token[e, j]] += slot_weight[e, j] * expert_out[e, j] for j < expert_num_tokens[e], experts in
// ascending order (deterministic), accumulated in the fp32 buffer `accumulator` [M, H].
void weight_and_reduce_batched(const DispatchedTokens& dispatched, const TensorView& expert_out,
                               const TensorView& accumulator, const TensorView& out, int num_threads);

}  // namespace fusedmoe
