// cuda_monolithic's Experts: router logits in, [M, H] out, through the GPU router and cuda_fused's kernels
// (README.md has the design).
#pragma once

#include <cstdint>
#include <string_view>

#include "backends/cuda_fused/experts.hpp"
#include "fusedmoe/kernel.hpp"
#include "fusedmoe/oracle.hpp"

namespace fusedmoe::cuda_monolithic {

// The low-latency path (route + cuda_fused's streaming pair: three launches) takes a call of M tokens when
// M <= kLowLatencyMaxTokens and M * top_k <= kLowLatencyMaxPairs; larger calls route and run cuda_fused's
// tiled path (align, GEMM1, GEMM2, reduce). These are cuda_fused::stream_path_fits's limits (a test checks
// that they agree).
inline constexpr std::int64_t kLowLatencyMaxTokens = 64;
inline constexpr std::int64_t kLowLatencyMaxPairs = 512;
// The streaming kernels keep per-expert tables in shared memory; supports() refuses more experts (and
// top_k beyond the pair limit), so that every supported config has a low-latency path at small M.
inline constexpr std::int64_t kMaxExperts = 1024;

// CUDA, compute capability 8.0+, bf16 weights and activations, SiLU or GELU, any H and I, E <= kMaxExperts,
// every routing recipe (Llama-4's weight on the input included), the standard format on one device (no
// expert-parallel dispatch), and shared memory for the streaming kernels. Any M: the low-latency path covers
// M <= kLowLatencyMaxTokens (M * k <= kLowLatencyMaxPairs), the tiled path the rest.
Support supports(const MoeConfig& config, const Platform& platform, ActivationFormat format);

// Whether a call of `num_tokens` tokens takes the low-latency path on the config's device.
bool takes_low_latency_path(const MoeConfig& config, std::int64_t num_tokens);

class CudaMonolithicExperts final : public ExpertsMonolithic {
 public:
  explicit CudaMonolithicExperts(const MoeConfig& config);
  std::string_view name() const override { return "cuda_monolithic"; }
  // The routing buffers (and the scaled input of weight-on-input recipes), then cuda_fused's workspace.
  std::size_t workspace_bytes(std::int64_t num_tokens) const override;
  // Routes on the GPU into the workspace, then runs cuda_fused's streaming pair (small M) or its tiled path,
  // writing out [M, H]. All on context.stream: no allocation, no host sync, capturable in a CUDA graph.
  void apply(const TensorView& hidden, const TensorView& router_logits, const TensorView& correction_bias,
             const ExpertWeights& weights, const TensorView& out, WorkspaceArena& workspace,
             const ExecContext& context) override;

 private:
  MoeConfig config_;
  // Forced to the streaming path, which falls back to the tiled heuristic beyond its limits; forced, so the
  // cuda_fused overrides (FUSEDMOE_CUDA_FUSED_PATH / _TILE, FUSEDMOE_TUNE_FILE) do not change this backend.
  cuda_fused::CudaFusedExperts experts_;
};

}  // namespace fusedmoe::cuda_monolithic
