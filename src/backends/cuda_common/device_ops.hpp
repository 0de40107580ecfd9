// The device paths generic code dispatches to when its tensors live on a CUDA device. Plain C++
// (no CUDA headers): router/, kernel/ and layer/ include it under `#if FUSEDMOE_WITH_CUDA`.
// Every function runs on context.stream of the tensors' device, allocates nothing and never waits for
// the device, so a forward stays capturable in a CUDA graph. Arguments are validated by the caller.
#pragma once

#include "fusedmoe/config.hpp"
#include "fusedmoe/tensor.hpp"

namespace fusedmoe::cuda {

// The router (router/router.cpp) on the GPU: every recipe with the CPU router's ids, order, tie and
// NaN/Inf rules. logits [M, E] fp32/bf16/fp16, correction_bias [E] fp32 or undefined,
// topk_ids [M, k] int32, topk_weights [M, k] fp32, all on one CUDA device.
void route(const TensorView& logits, const RoutingConfig& routing, const TensorView& correction_bias,
           const TensorView& topk_ids, const TensorView& topk_weights, const ExecContext& context);

// out [M, R] fp32 = hidden [M, H] (any float dtype) . weight [R, H]^T (fp32), summed in the same order
// as the CPU's linear_fp32 (layer/router_gate.cpp), so router logits agree bit for bit.
void linear_fp32(const TensorView& hidden, const TensorView& weight, const TensorView& out,
                 const ExecContext& context);

// The shared experts' routing: ids[t, s] = s; weights[t, s] = sigmoid(gate_logits[t, 0]), or 1 when
// gate_logits is undefined. ids [M, count] int32, weights [M, count] fp32, gate_logits [M, 1] fp32.
void shared_experts_routing(const TensorView& gate_logits, const TensorView& ids, const TensorView& weights,
                            const ExecContext& context);

// out += addend elementwise (float math, rounded to nearest even into out's dtype); equal shapes and dtypes.
void add_in_place(const TensorView& out, const TensorView& addend, const ExecContext& context);

// Weight on the input (Llama-4): scaled[t, :] = topk_weights[t, 0] * hidden[t, :] (rounded to hidden's
// dtype) and unit_weights[t, :] = 1. hidden, scaled [M, H]; topk_weights, unit_weights [M, k] fp32.
void scale_by_routing_weight(const TensorView& hidden, const TensorView& topk_weights,
                             const TensorView& scaled, const TensorView& unit_weights,
                             const ExecContext& context);

}  // namespace fusedmoe::cuda
