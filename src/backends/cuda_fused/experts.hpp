// cuda_fused's Experts and converted weights (README.md has the design).
#pragma once

#include "fusedmoe/kernel.hpp"
#include "fusedmoe/oracle.hpp"

namespace fusedmoe::cuda_fused {

// Weights converted once, on the config's CUDA device:
//   w13 [E_local, 2 I_pad, H_k]: per 32-row group g, rows 0..15 = gate columns 16g..16g+15, rows 16..31 = the
//       matching up columns (one GEMM1 tile holds both); I_pad = I rounded up to 64, H_k = H rounded up to
//       64;
//   w2  [E_local, H_n, I_pad]: H_n = H rounded up to 128. Padding is zeros.
class CudaFusedWeights final : public ExpertWeights {
 public:
  Tensor w13, w2;
  std::int64_t num_experts = 0, hidden = 0, intermediate = 0;
  std::int64_t intermediate_padded = 0;  // I_pad
  std::int64_t hidden_padded_k = 0;      // H_k: w13's depth
  std::int64_t hidden_padded_n = 0;      // H_n: w2's rows
};

// Canonical bf16 w13 [E, 2I, H] and w2 [E, H, I], on the CPU or on the config's CUDA device.
std::shared_ptr<const ExpertWeights> convert_weights(const Tensor& w13, const Tensor& w2,
                                                     const MoeConfig& config);

Support supports(const MoeConfig& config, const Platform& platform, ActivationFormat format);

// Which kernels a call runs: align + tiled GEMMs + reduce, or the small-M streaming pair
// (kernels/stream_small_m.cuh; M <= 64, M * k <= 512, E_local <= 1024, ~190 KiB of shared memory).
// `automatic` is the tiled path: on the H100 the streaming pair measured 1.0-1.2x slower at M = 1..64
// (bench/results/2026-11-27-h100-session2.md). FUSEDMOE_CUDA_FUSED_PATH=stream|tiled|auto picks one.
enum class ForwardPath { automatic, stream, tiled };
ForwardPath forward_path_from_env();

class CudaFusedExperts final : public ExpertsModular {
 public:
  explicit CudaFusedExperts(const MoeConfig& config) : config_(config), path_(forward_path_from_env()) {}
  std::string_view name() const override { return "cuda_fused"; }
  ActivationFormat format() const override { return ActivationFormat::standard; }
  WeightAndReduce weight_and_reduce() const override { return WeightAndReduce::by_experts; }
  // Sized for any tile the table may pick at up to problem.num_tokens tokens.
  std::size_t workspace_bytes(const ExpertsProblem& problem) const override;
  // Align, GEMM1, GEMM2, reduce on context.stream: allocates nothing, never waits for the device.
  void apply(const DispatchedTokens& dispatched, const ExpertWeights& weights, const TensorView& expert_out,
             WorkspaceArena& workspace, const ExecContext& context) override;

 private:
  bool takes_stream_path(std::int64_t num_tokens, int top_k, std::int64_t num_local_experts,
                         int device_index) const;

  MoeConfig config_;
  ForwardPath path_;
};

}  // namespace fusedmoe::cuda_fused
