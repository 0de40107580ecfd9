// Canonical MoE weights: the layout loading produces, before any backend converts them.
#pragma once

#include "fusedmoe/tensor.hpp"

namespace fusedmoe {

struct MoeWeights {
  Tensor router_gate;      // [E, H]: router logits = hidden . router_gate^T (optional when logits are given)
  Tensor correction_bias;  // [E] fp32: selection-only bias (sigmoid_grouped_bias), else undefined
  Tensor w13;              // [E_local, 2I, H]: gate rows [0, I) then up rows [I, 2I)
  Tensor w2;               // [E_local, H, I]
  Tensor shared_w13;       // [count, 2Is, H] when the config has shared experts
  Tensor shared_w2;        // [count, H, Is]
  Tensor shared_gate;      // [1, H] when shared.sigmoid_gate
};

// What a backend made of the canonical weights, once, in finalize_weights(). Each backend
// derives its own layout from this; the modular kernel only passes it through.
class ExpertWeights {
 public:
  virtual ~ExpertWeights() = default;
};

// The canonical layout, used as-is by backends that need no conversion.
class CanonicalExpertWeights final : public ExpertWeights {
 public:
  CanonicalExpertWeights(Tensor w13, Tensor w2) : w13(std::move(w13)), w2(std::move(w2)) {}
  Tensor w13;  // [E_local, 2I, H]
  Tensor w2;   // [E_local, H, I]
};

}  // namespace fusedmoe
