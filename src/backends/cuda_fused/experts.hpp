// cuda_fused's Experts and converted weights (README.md has the design).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backends/cuda_fused/forward_choice.hpp"
#include "backends/cuda_fused/kernels/tile_table.hpp"
#include "fusedmoe/kernel.hpp"
#include "fusedmoe/oracle.hpp"
#include "oracle/tuning.hpp"

namespace fusedmoe::cuda_fused {

// Weights converted once, on the config's CUDA device:
//   w13 [E_local, 2 I_pad, H_k]: per 32-row group g, rows 0..15 = gate columns 16g..16g+15, rows 16..31 = the
//       matching up columns (one GEMM1 tile holds both); I_pad = I rounded up to 64, H_k = H rounded up to
//       64;
//   w2  [E_local, H_n, I_pad]: H_n = H rounded up to 128. Padding is zeros.
// Each expert's matrix is stored in k-panels (kernels/weight_panels.cuh): depth / 64 panels of [rows][64],
// so that every 64-deep stage a GEMM tile reads is one contiguous run.
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

class CudaFusedExperts final : public ExpertsModular {
 public:
  // Reads the environment overrides and the tune table (see ForwardChoice).
  explicit CudaFusedExperts(const MoeConfig& config);
  // Every call runs `forced` (what `fusedmoe tune` times).
  CudaFusedExperts(const MoeConfig& config, ForwardChoice forced);
  std::string_view name() const override { return "cuda_fused"; }
  ActivationFormat format() const override { return ActivationFormat::standard; }
  // FUSEDMOE_CUDA_FUSED_ALIGN=auto|single|multi: the one-launch align (kernels/align.cuh) for small batches
  // (auto: up to kSingleBlockAlignPairs pairs), wherever it fits, or never.
  enum class AlignMode { automatic, single, multi };
  // FUSEDMOE_CUDA_FUSED_HANDOVER=auto|on|off: the warp-specialised tiles' GEMM1 -> GEMM2 hand-over per row
  // block (kernels/sm90_wgmma_warp_specialized.cuh: GEMM2 takes each row block once GEMM1 has written it
  // instead of waiting for the whole of GEMM1). auto: where an expert's rows fit one row block on average
  // (measured on the H100: 2-3% faster there; where several row blocks share an expert's weight tiles,
  // GEMM2's staggered start lets them drift apart in the L2: mixtral-8x7b M=1024 6% slower).
  enum class Handover { automatic, on, off };

  WeightAndReduce weight_and_reduce() const override { return WeightAndReduce::by_experts; }
  // Sized for any tile the table may pick at up to problem.num_tokens tokens, and the persistent path.
  std::size_t workspace_bytes(const ExpertsProblem& problem) const override;
  // Align, GEMM1, GEMM2, reduce on context.stream: allocates nothing, never waits for the device.
  void apply(const DispatchedTokens& dispatched, const ExpertWeights& weights, const TensorView& expert_out,
             WorkspaceArena& workspace, const ExecContext& context) override;

 private:
  // Both public constructors delegate here: every environment switch is read in one place.
  struct SwitchesFromEnvironment {};
  CudaFusedExperts(const MoeConfig& config, std::optional<ForwardChoice> forced, SwitchesFromEnvironment);

  ForwardChoice choice_for(std::int64_t num_tokens) const;
  bool may_choose_persistent() const;
  // fp32 words of the persistent path's scratch for a call of num_tokens tokens.
  std::int64_t persistent_scratch(std::int64_t num_tokens, std::int64_t top_k, std::int64_t hidden) const;

  MoeConfig config_;
  // FUSEDMOE_CUDA_FUSED_ALIGN (see AlignMode).
  AlignMode align_mode_ = AlignMode::automatic;
  // FUSEDMOE_CUDA_PDL: GEMM1, GEMM2 and the reduce may overlap their predecessor's tail (Hopper).
  bool dependent_launch_ = true;
  // FUSEDMOE_CUDA_FUSED_WGMMA=off: the heuristic stays on the mma.sync tiles (for A/B runs).
  bool wgmma_disabled_ = false;
  // FUSEDMOE_CUDA_FUSED_HANDOVER (see Handover).
  Handover handover_ = Handover::automatic;
  // FUSEDMOE_CUDA_FUSED_SORTED_ROWS=off: the warp-specialised GEMM2 writes each pair's row where the reduce
  // reads it (scattered 16-byte stores) instead of its rows in sorted order by TMA
  // (Gemm2Launch::sorted_rows).
  bool sorted_rows_disabled_ = false;
  // FUSEDMOE_CUDA_FUSED_TMA_ROWS=off: the warp-specialised GEMM2 gathers its A rows by cp.async instead of
  // one TMA box per k-tile (Gemm2Launch::tma_rows).
  bool tma_rows_disabled_ = false;
  // FUSEDMOE_CUDA_FUSED_ASYNC_SIGNAL=off: the warp-specialised producers signal their cp.async copies
  // kSignalLag stages after issuing them instead of as they land (Gemm1Launch::async_signal).
  bool async_signal_disabled_ = false;
  // FUSEDMOE_CUDA_FUSED_RASTER=fixed: the warp-specialised tiles take their tiles in fixed groups of row
  // blocks instead of expert groups (kernels/raster.hpp).
  bool fixed_raster_ = false;
  // FUSEDMOE_CUDA_FUSED_RASTER_ROWS: the expert groups' most tile rows (0: raster_group_rows decides).
  int raster_rows_ = 0;
  // The L2 warm-up's budget of GEMM1's first weights while a decode batch's align runs, 0 for none
  // (kernels/l2_warm_up.cuh; on by default on Hopper for the mma.sync tiles, up to kWarmMaxPairs pairs):
  // FUSEDMOE_CUDA_FUSED_WARM=off, FUSEDMOE_CUDA_FUSED_WARM_MIB.
  std::int64_t warm_bytes_ = 0;
  std::optional<ForwardChoice> forced_;
  std::optional<TuneEntry> tuned_;
  // FUSEDMOE_CUDA_FUSED_PERSISTENT_SHAPE: the persistent kernel's box rows x warps
  // (persistent_shape_names()).
  int persistent_shape_ = 0;
  // FUSEDMOE_CUDA_FUSED_PERSISTENT_AHEAD: boxes each warp keeps requested (default 1; capped by its ring).
  int persistent_lookahead_ = 1;
  // The persistent path's counters (launch.hpp: PersistentLaunch::counters), zeroed once where the device
  // runs that path and a forced choice or the tune table names it; empty elsewhere (and then the workspace
  // holds none of its scratch, up to ~70 MB at 64 pairs on an H100). They make forwards that take the
  // persistent path stateful: forwards of one Experts object must then run in stream order (one stream), as
  // MoeKernel runs them.
  Tensor persistent_counters_;
};

}  // namespace fusedmoe::cuda_fused
