// cuda_cutlass_grouped's Experts and converted weights (README.md has the design). Built only with CUTLASS.
#pragma once

#include <cstdint>

#include "fusedmoe/kernel.hpp"
#include "fusedmoe/oracle.hpp"

namespace fusedmoe::cuda_cutlass_grouped {

// The canonical layout on the config's CUDA device (what the GEMMs read as K-major B operands):
//   w13 [E_local, 2I, H] (gate rows, then up rows), w2 [E_local, H, I], bf16, H and I multiples of 8.
class CutlassGroupedWeights final : public ExpertWeights {
 public:
  Tensor w13, w2;
  std::int64_t num_experts = 0, hidden = 0, intermediate = 0;
};

// Canonical bf16 w13 [E, 2I, H] and w2 [E, H, I], on the CPU or on the config's CUDA device.
std::shared_ptr<const ExpertWeights> convert_weights(const Tensor& w13, const Tensor& w2,
                                                     const MoeConfig& config);

class CutlassGroupedExperts final : public ExpertsModular {
 public:
  explicit CutlassGroupedExperts(const MoeConfig& config) : config_(config) {}
  std::string_view name() const override { return "cuda_cutlass_grouped"; }
  ActivationFormat format() const override { return ActivationFormat::standard; }
  WeightAndReduce weight_and_reduce() const override { return WeightAndReduce::by_experts; }
  std::size_t workspace_bytes(const ExpertsProblem& problem) const override;
  // Sort by expert, gather, GEMM1, activation, GEMM2, reduce on context.stream: allocates nothing, never
  // waits for the device (capturable in a CUDA graph).
  void apply(const DispatchedTokens& dispatched, const ExpertWeights& weights, const TensorView& expert_out,
             WorkspaceArena& workspace, const ExecContext& context) override;

 private:
  MoeConfig config_;
};

}  // namespace fusedmoe::cuda_cutlass_grouped
