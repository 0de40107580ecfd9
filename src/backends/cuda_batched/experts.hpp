// cuda_batched's Experts: the batched format ([E_local, capacity, H] slabs, per-expert counts on the
// device) through cuda_fused's converted weights and grouped GEMMs (README.md has the design).
#pragma once

#include <cstdint>
#include <optional>

#include "backends/cuda_fused/kernels/tile_table.hpp"
#include "fusedmoe/kernel.hpp"
#include "fusedmoe/oracle.hpp"

namespace fusedmoe::cuda_batched {

// CUDA device with sm_80+, bf16 weights and activations, SiLU or GELU, enough shared memory (what
// cuda_fused::supports asks, whose kernels run here), and the batched format only.
Support supports(const MoeConfig& config, const Platform& platform, ActivationFormat format);

// What the tile choice knows before the counts, which stay on the device.
struct BatchedTileProblem {
  std::int64_t capacity;  // rows per expert slab
  int top_k;
  std::int64_t num_experts;        // global E: a slab expects about capacity * k / E rows
  std::int64_t num_local_experts;  // E_local
  std::int64_t intermediate_padded;
  int num_sms;
  bool wgmma = false;  // Hopper's wgmma tiles may be chosen (cuda_fused::wgmma_tiles_available)
  std::size_t shared_memory_optin = 0;  // cuda_fused's large_shared tiles may be chosen where they fit
};

// A tile serves slabs of `capacity` rows when its block_m is at most the capacity rounded up to 16: a taller
// block would compute padding only (and the workspace is sized for the tiles that fit).
bool tile_fits(const cuda_fused::TileConfig& tile, std::int64_t capacity);
// Sorted rows one expert takes with this block_m: its slab rounded up to whole blocks.
std::int64_t padded_rows(std::int64_t capacity, int block_m);
// cuda_fused's heuristic (tile_table.hpp: M buckets, wgmma tiles on Hopper, stepped down while the GEMM1
// blocks would not cover the SMs once) on the expected rows per expert, ceil(capacity * k / E) clamped to
// [1, capacity]; then fitted to the capacity (fitted_tile).
const cuda_fused::TileConfig& choose_tile(const BatchedTileProblem& problem);
// `tile` when it fits the capacity, else the tallest mma.sync tile of the heuristic's chain m16 .. m128 that
// does (m16 always does).
const cuda_fused::TileConfig& fitted_tile(cuda_fused::TileId tile, std::int64_t capacity);

class CudaBatchedExperts final : public ExpertsModular {
 public:
  // The tile: `forced` when given, else FUSEDMOE_CUDA_BATCHED_TILE=<tile name> when set, else choose_tile
  // (with the wgmma tiles where available, unless FUSEDMOE_CUDA_BATCHED_WGMMA=off).
  explicit CudaBatchedExperts(const MoeConfig& config,
                              std::optional<cuda_fused::TileId> forced = std::nullopt);
  std::string_view name() const override { return "cuda_batched"; }
  ActivationFormat format() const override { return ActivationFormat::batched; }
  WeightAndReduce weight_and_reduce() const override { return WeightAndReduce::by_finalize; }
  // Sized for any tile that fits slabs of problem.num_tokens rows (the capacity).
  std::size_t workspace_bytes(const ExpertsProblem& problem) const override;
  // Align, [pad], GEMM1, GEMM2, [copy out] on context.stream: allocates nothing, never waits for the device.
  // expert_out [E_local, capacity, H]: the rows below each expert's count, unweighted; the rest untouched.
  void apply(const DispatchedTokens& dispatched, const ExpertWeights& weights, const TensorView& expert_out,
             WorkspaceArena& workspace, const ExecContext& context) override;

 private:
  MoeConfig config_;
  std::optional<cuda_fused::TileId> forced_;
  bool wgmma_disabled_ = false;
  // FUSEDMOE_CUDA_PDL: GEMM1 and GEMM2 may overlap their predecessor's tail (Hopper; cuda_fused/README.md).
  bool dependent_launch_ = true;
};

}  // namespace fusedmoe::cuda_batched
