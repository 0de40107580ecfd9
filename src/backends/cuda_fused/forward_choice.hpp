// How cuda_fused picks its kernels per call: the forward choices, their names (as tune tables and
// FUSEDMOE_CUDA_FUSED_TILE write them), where a choice comes from, and what `fusedmoe tune` times.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backends/cuda_fused/kernels/tile_table.hpp"
#include "fusedmoe/config.hpp"
#include "oracle/tuning.hpp"

namespace fusedmoe::cuda_fused {

// How a call picks its kernels: the persistent decode kernel (kernels/persistent_decode.cuh; one launch,
// M * k <= 64, Hopper with sm_90a code), the small-M streaming pair (kernels/stream_small_m.cuh; M <= 64,
// M * k <= 512, E_local <= 1024, ~190 KiB of shared memory) or align + tiled GEMMs + reduce with one tile of
// the table. In order: a forced choice (the constructor's, else
// FUSEDMOE_CUDA_FUSED_PATH=persistent|stream|tiled and FUSEDMOE_CUDA_FUSED_TILE=<tile name>), else the
// bucket of a `fusedmoe tune` table (FUSEDMOE_TUNE_FILE) for this device and shape, else the built-in tune
// table for this device and shape (builtin_tune_tables.cpp; FUSEDMOE_TUNE_BUILTIN=off skips it), else the
// heuristic (tiled, tile by M bucket). Choices are named "persistent", "stream", a tile (to_string(TileId)),
// or "<GEMM1 tile>/<GEMM2 tile>": two tiles with the same rows, both warp-specialised or both not (GEMM2
// then runs on its own tile over GEMM1's row blocks; the bits do not change). A call beyond the persistent
// path's limits takes the streaming pair if that was chosen too and fits, else the tiled path; one beyond the
// streaming pair's takes the tiled path.
struct ForwardChoice {
  bool stream = false;
  std::optional<TileId> tile;  // nullopt: heuristic
  bool persistent = false;
  std::optional<TileId> gemm2_tile = std::nullopt;  // nullopt: GEMM2 runs on `tile` too
};
// Parses one choice name; throws InvalidArgument listing the names.
ForwardChoice parse_forward_choice(std::string_view name);
// The choices `fusedmoe tune` should time for M tokens on this config and device ("stream" only where its
// limits admit M).
std::vector<std::string> tune_candidates(const MoeConfig& config, std::int64_t num_tokens);
// The token counts `fusedmoe tune` measures for `tokens` (ascending, distinct): those, and below the largest
// the last M of each tile regime (kRegimeLastRowsPerExpert: M * k <= rows * E_local for uniform routing; the
// first bucket serves every M below its own too), ascending. A bucket then never spans two regimes: a 192-row
// tile that wins at 128 rows per expert is not chosen for 100 because the bucket below ended further down.
std::vector<std::int64_t> tune_token_counts(const MoeConfig& config, std::vector<std::int64_t> tokens);

// The choice FUSEDMOE_CUDA_FUSED_PATH / FUSEDMOE_CUDA_FUSED_TILE force, nullopt when neither forces anything;
// throws InvalidArgument naming the variable for a bad value.
std::optional<ForwardChoice> forced_choice_from_env();
// The tune table entry for this config's device and shape: FUSEDMOE_TUNE_FILE's (every bucket's choice
// checked, the file named in the error), else the built-in one where this device runs all its choices, else
// nullopt (the heuristic decides).
std::optional<TuneEntry> tuned_choices(const MoeConfig& config);

}  // namespace fusedmoe::cuda_fused
