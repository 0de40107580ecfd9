// The fast CPU Experts: prepacked bf16 panels + an ISA's panel kernel (see README.md).
#pragma once

#include <cstdint>

#include "backends/cpu_prepacked/microkernel.hpp"
#include "fusedmoe/kernel.hpp"
#include "fusedmoe/oracle.hpp"

namespace fusedmoe::prepacked {

// Weights converted once into panels: w13 [E][I16 / 16][H'][16 lanes], w2 [E][H32 / 32][I16][16 lanes]
// (H' = H, or H rounded up to even for the pairs layout; see README.md).
class PrepackedWeights final : public ExpertWeights {
 public:
  Tensor w13_panels, w2_panels;  // uint32 lanes (two bf16 each)
  PanelLayout layout = PanelLayout::widen;
  std::int64_t num_experts = 0, hidden = 0, intermediate = 0;
  std::int64_t hidden_depth = 0;         // GEMM1 depth as packed
  std::int64_t intermediate_padded = 0;  // I rounded up to 16
  std::int64_t hidden_padded = 0;        // H rounded up to 32
  const std::uint32_t* w13_panel(std::int64_t expert, std::int64_t block) const;
  const std::uint32_t* w2_panel(std::int64_t expert, std::int64_t block) const;
};

// Packs canonical bf16 w13 [E, 2I, H] and w2 [E, H, I] (run once, from finalize_weights()).
std::shared_ptr<const ExpertWeights> pack_weights(const Tensor& w13, const Tensor& w2,
                                                  const MoeConfig& config, PanelLayout layout);

class PrepackedExperts final : public ExpertsModular {
 public:
  PrepackedExperts(const MoeConfig& config, PanelKernelInfo kernel, std::string name);
  std::string_view name() const override { return name_; }
  ActivationFormat format() const override { return ActivationFormat::standard; }
  WeightAndReduce weight_and_reduce() const override { return WeightAndReduce::by_experts; }
  std::size_t workspace_bytes(const ExpertsProblem& problem) const override;
  void apply(const DispatchedTokens& dispatched, const ExpertWeights& weights, const TensorView& expert_out,
             WorkspaceArena& workspace, const ExecContext& context) override;

 private:
  MoeConfig config_;
  PanelKernelInfo kernel_;
  std::string name_;
};

// The supports() questions both fast CPU backends share (dtypes, activation, format, device).
Support supports_prepacked(const MoeConfig& config, ActivationFormat format);

}  // namespace fusedmoe::prepacked
