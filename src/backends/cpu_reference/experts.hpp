// cpu_reference: the portable modular Experts. Any dtype, fp32 accumulation, one token at a time:
// simple and obviously right, the oracle's last resort.
#pragma once

#include "fusedmoe/kernel.hpp"
#include "fusedmoe/oracle.hpp"

namespace fusedmoe {

class ReferenceExperts final : public ExpertsModular {
 public:
  explicit ReferenceExperts(const MoeConfig& config) : config_(config) {}
  std::string_view name() const override { return "cpu_reference"; }
  ActivationFormat format() const override { return ActivationFormat::standard; }
  WeightAndReduce weight_and_reduce() const override { return WeightAndReduce::by_experts; }
  std::size_t workspace_bytes(const ExpertsProblem& problem) const override;
  void apply(const DispatchedTokens& dispatched, const ExpertWeights& weights, const TensorView& expert_out,
             WorkspaceArena& workspace, const ExecContext& context) override;

 private:
  MoeConfig config_;
};

// Shared by the reference family's supports(): CPU device and the canonical weight layout.
Support reference_supports_device(const MoeConfig& config);
std::shared_ptr<const ExpertWeights> reference_convert_weights(const Tensor& w13, const Tensor& w2,
                                                               const MoeConfig& config);

}  // namespace fusedmoe
