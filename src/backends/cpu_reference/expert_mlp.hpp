// One expert's gated MLP for one token, in fp32 accumulation: the arithmetic of the reference family.
#pragma once

#include <cstdint>
#include <span>

#include "fusedmoe/config.hpp"
#include "fusedmoe/weights.hpp"

namespace fusedmoe {

// Most threads the reference family uses; its per-thread scratch is sized for this many.
inline constexpr int kReferenceMaxThreads = 64;

class ExpertMlp {
 public:
  ExpertMlp(const CanonicalExpertWeights& weights, Activation activation, DType act_dtype);
  // Scratch floats one call needs.
  std::int64_t scratch_floats() const { return intermediate_size_; }
  // out[H] = W2_e . act(W1_e x, W3_e x), the intermediate rounded to act_dtype. x and out are fp32.
  void run(std::int64_t local_expert, std::span<const float> x, std::span<float> out,
           std::span<float> scratch) const;
  std::int64_t num_local_experts() const { return num_local_experts_; }

 private:
  const CanonicalExpertWeights& weights_;
  Activation activation_;
  DType act_dtype_;
  std::int64_t num_local_experts_, hidden_size_, intermediate_size_;
};

// Checks that `weights` is the canonical kind and matches the config's shapes; throws
// InternalError/InvalidArgument.
const CanonicalExpertWeights& as_canonical(const ExpertWeights& weights, std::string_view backend);

// Loads row `row` of a [rows, H] tensor as fp32.
void load_row(const TensorView& tensor, std::int64_t row, std::span<float> out);
void store_row(const TensorView& tensor, std::int64_t row, std::span<const float> values);

}  // namespace fusedmoe
