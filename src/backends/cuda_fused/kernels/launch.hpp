// cuda_fused's launchers: plain C++ entry points (no CUDA headers) that experts.cpp and
// convert_weights.cpp call; each launches on the given stream and checks the launch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "backends/cuda_fused/kernels/raster.hpp"
#include "backends/cuda_fused/kernels/tile_table.hpp"
#include "fusedmoe/device.hpp"

namespace fusedmoe::cuda_fused {

// Align: sorted (token, slot) ids padded per expert to block_m, per-block experts, offsets.
struct AlignLaunch {
  const std::int32_t* topk_ids;
  std::int64_t num_pairs;
  const std::int32_t* expert_map;  // nullptr = identity
  int num_experts;
  int num_local_experts;
  int block_m;
  std::int32_t* counts;  // [E_local + 1] scratch (the last word: the count kernels' ticket)
  // [E_local + 1]: each expert's first padded row, then the total. In ascending expert id, except in
  // parity_order, where offsets[e + 1] need not be expert e's end.
  std::int64_t* offsets;
  std::int32_t* sorted_ids;    // [max_blocks * block_m]
  std::int32_t* block_expert;  // [max_blocks]
  std::int64_t max_blocks;
  bool single_block;  // all in one launch when the batch is small enough (align.cuh)
  // Zeroed by the align's first kernel (the warp-specialised tiles' counters: tile_counter_words words),
  // nullptr for none. GEMM1 reads them only after waiting for the align, GEMM2 after GEMM1's wait.
  std::uint64_t* zero_words = nullptr;
  std::int64_t zero_word_count = 0;
  // [num_pairs]: the sorted row of each pair with a local expert (the others are left as they were), for a
  // GEMM2 that writes its rows in sorted order (Gemm2Launch::sorted_rows); nullptr: not written.
  std::int32_t* pair_positions = nullptr;
  // [max_blocks]: each block's run of its expert's blocks (raster.hpp), for the warp-specialised tiles'
  // expert raster (Gemm1Launch::block_runs); nullptr: not written.
  BlockRun* block_runs = nullptr;
  // Lay out first the experts with an even number of row blocks, then the odd ones (AlignParams::
  // parity_order): for the pair tiles, whose row-block pairs (2p, 2p + 1) multicast only within one expert.
  bool parity_order = false;
};
// Launched ordinarily; its kernels let a dependent GEMM1 launch at once (they write nothing GEMM1 reads
// before its wait).
void launch_align(const AlignLaunch& args, StreamHandle stream);

// Decode's L2 warm-up of an mma.sync GEMM1's first weights while the align step runs (l2_warm_up.cuh):
// only where every routed local expert owns one row block (M <= block_m with distinct ids per token,
// num_pairs <= 32) and GEMM1 is a dependent launch on sm_90+. panels == 0: none.
struct L2WarmUp {
  const std::int32_t* topk_ids = nullptr;    // [num_pairs] global ids
  const std::int32_t* expert_map = nullptr;  // global -> local, or nullptr for identity
  int num_pairs = 0;
  int num_experts = 0;
  int num_local_experts = 0;
  int panels = 0;  // k-panels (64 deep) of each block's weight rows to request, at most 32
};

// GEMM1 + activation: intermediate [max_blocks * block_m, I_pad] bf16.
struct Gemm1Launch {
  const TileConfig* tile;
  const void* hidden;  // bf16 [M, lda], 16-byte aligned rows
  std::int64_t lda;
  std::int64_t a_columns;     // multiple of 8
  const void* w13;            // converted [E_local, 2 I_pad, weight_depth] in k-panels (weight_panels.cuh)
  std::int64_t weight_depth;  // H_k
  std::int64_t num_local_experts;  // E_local (bounds the weights' TMA map)
  std::int64_t intermediate_padded;
  const std::int32_t* sorted_ids;
  const std::int32_t* block_expert;
  std::int64_t max_blocks;
  int top_k;
  void* intermediate;
  int activation;  // 0 = SiLU, 1 = GELU
  // Overlap the previous kernel's tail (cuda_common/kernels/grid_dependency.cuh): GEMM1 waits for it before
  // reading anything, so any predecessor is fine.
  bool dependent_launch = false;
  // With dependent_launch: GEMM2's grid fills every SM slot (the caller sets it from gemm2_fills_a_wave), so
  // an mma.sync or one-tile wgmma GEMM1 lets it launch early even where GEMM1's own grid needs several waves
  // (gemm1_triggers_early; grid_dependency.cuh says why).
  bool successor_fills_a_wave = false;
  // [tile_counter_words] device words: the two the warp-specialised tiles hand out tiles from (GEMM1's, then
  // GEMM2's; the same pointer goes to launch_gemm2), then row_done's. The caller zeroes them before the
  // kernel that precedes GEMM1 (AlignLaunch::zero_words, or launch_zero_tile_counters): GEMM1 reads its word
  // after waiting for that kernel, GEMM2 after waiting for GEMM1 or, with the hand-over, once GEMM1 let it
  // launch (after GEMM1's wait). Unused by the other tiles.
  std::uint64_t* tile_counters = nullptr;
  // Device: the rows the align step used (its offsets[E_local], a multiple of block_m). The warp-specialised
  // tiles hand out no tiles past them; nullptr: every one of max_blocks (they skip blocks without an expert).
  const std::int64_t* used_rows = nullptr;
  // Warp-specialised tiles: the GEMM1 -> GEMM2 hand-over per row block (sm90_wgmma_warp_specialized.cuh):
  // [max_blocks] words after the two tile counters (tile_counters + 2), zeroed with them; the same pointer
  // goes to launch_gemm2, whose tile must be this one. nullptr: GEMM2 waits for the whole of GEMM1.
  std::uint32_t* row_done = nullptr;
  // mma.sync tiles: the L2 warm-up (see L2WarmUp).
  L2WarmUp warm{};
  // Warp-specialised tiles: the padding rows of every row block GEMM1 computes are written (zeros), so that
  // a GEMM2 with tma_rows reads no stale values. Otherwise warps whose 16 rows are all padding store nothing.
  bool write_padding_warps = false;
  // Warp-specialised tiles, A rows by cp.async: each producer thread's copies of a stage arrive on its full
  // barrier when they land (cp.async.mbarrier.arrive.noinc) and the consumers fence them for the wgmma,
  // instead of the thread waiting for them two stages later (which tied the signal to the consumers'
  // release of an earlier stage; measured 0.5-4.5% of the forward at M >= 1024 on an H200,
  // bench/results/2026-11-28-h200-session18.md). false: the lagged signal.
  bool async_signal = true;
  // Warp-specialised tiles: the align's block runs (AlignLaunch::block_runs): tiles are taken in expert
  // groups (raster.hpp: each expert's weights cross the DRAM once per group); nullptr: fixed groups of
  // kRasterRows row blocks. Same bits either way.
  const BlockRun* block_runs = nullptr;
  int raster_rows = 0;  // > 0: the expert groups' most tile rows (else raster_group_rows's)
};
void launch_gemm1(const Gemm1Launch& args, StreamHandle stream);

// GEMM2 + routing weight: rows [M * k, pitch] bf16 (the pair's row), or with sorted_rows [max_blocks *
// block_m, pitch] (the sorted row; padding rows get zeros).
struct Gemm2Launch {
  const TileConfig* tile;
  const void* intermediate;
  std::int64_t intermediate_padded;  // lda and depth
  const void* w2;                    // converted [E_local, H_pad, I_pad]
  std::int64_t num_local_experts;
  std::int64_t hidden_padded;
  std::int64_t hidden;
  const std::int32_t* sorted_ids;
  const std::int32_t* block_expert;
  std::int64_t max_blocks;
  const float* topk_weights;
  void* out_rows;
  std::int64_t pitch;
  // As Gemm1Launch's, with two preconditions: the kernel before is launch_gemm1 (every block of which waits
  // before it exits), and block_expert was written before that one: GEMM2 reads block_expert and requests
  // its first weight tiles before it waits for GEMM1.
  bool dependent_launch = false;
  std::uint64_t* tile_counters = nullptr;   // as Gemm1Launch's (the same pointer)
  const std::int64_t* used_rows = nullptr;  // as Gemm1Launch's
  std::uint32_t* row_done = nullptr;        // as Gemm1Launch's (the same pointer, or both nullptr)
  // Warp-specialised tiles only: rows in sorted order, written by TMA stores (whole 16-row boxes instead of
  // one scattered row per pair); the reduce then finds each pair's row through AlignLaunch::pair_positions.
  bool sorted_rows = false;
  // Warp-specialised tiles only: the A rows (the intermediate, in sorted order) as one TMA box per k-tile
  // instead of a cp.async gather. Needs GEMM1 launched with write_padding_warps (else the padding rows GEMM1
  // skips keep stale values: the same results, but more power drawn).
  bool tma_rows = false;
  bool async_signal = true;  // as Gemm1Launch's (with tma_rows, GEMM2's A rows are not copied by cp.async)
  // The tile GEMM1 ran on, where it differs from `tile` (warp-specialised, the same rows; nullptr: `tile`):
  // the hand-over counts its column blocks.
  const TileConfig* gemm1_tile = nullptr;
  const BlockRun* block_runs = nullptr;  // as Gemm1Launch's
  int raster_rows = 0;                   // as Gemm1Launch's
};
void launch_gemm2(const Gemm2Launch& args, StreamHandle stream);
// Whether launch_gemm2's grid has at least as many blocks as the device holds at once (false for the
// warp-specialised tiles, whose grids are one block per SM at most). It counts launched blocks, those of row
// blocks the align leaves unused (they exit at once) included: an over-count where experts have few rows or
// are not local.
bool gemm2_fills_a_wave(const Gemm2Launch& args);
// Whether launch_gemm1 lets GEMM2 launch early: dependent_launch, and on mma.sync tiles GEMM1's grid is one
// wave or successor_fills_a_wave, on one-tile wgmma tiles successor_fills_a_wave (false for the
// warp-specialised tiles, which hand rows over themselves).
bool gemm1_triggers_early(const Gemm1Launch& args);

// 64-bit words of the warp-specialised tiles' counters: the two tile counters, then one 32-bit row_done
// word per row block (Gemm1Launch::row_done).
constexpr std::int64_t tile_counter_words(std::int64_t row_blocks) {
  return 2 + (row_blocks + 1) / 2;
}
// Zeroes them (an async memset on the stream: capturable).
void launch_zero_tile_counters(std::uint64_t* tile_counters, std::int64_t row_blocks, StreamHandle stream);

// The same two GEMMs on the wgmma tiles (tile->wgmma; sm90_wgmma_grouped_gemm.cuh); launch_gemm1 / 2 forward
// to these. Throws Unsupported when this build has no sm_90a code.
void launch_wgmma_gemm1(const Gemm1Launch& args, StreamHandle stream);
void launch_wgmma_gemm2(const Gemm2Launch& args, StreamHandle stream);
// gemm1_triggers_early and gemm2_fills_a_wave for the wgmma tiles (they forward to these).
bool wgmma_gemm1_triggers_early(const Gemm1Launch& args);
bool wgmma_gemm2_fills_a_wave(const Gemm2Launch& args);

// Sum over top-k in slot order: out [M, H] bf16.
struct ReduceLaunch {
  const void* rows;  // the pair's row, or with pair_positions the row pair_positions[pair]
  std::int64_t pitch;
  const std::int32_t* topk_ids;
  const std::int32_t* expert_map;
  int num_experts;
  int num_local_experts;
  int top_k;
  std::int64_t num_tokens;
  std::int64_t hidden;
  void* out;
  bool dependent_launch = false;                 // it waits for its predecessor before reading anything
  const std::int32_t* pair_positions = nullptr;  // AlignLaunch::pair_positions (for Gemm2Launch::sorted_rows)
};
void launch_reduce(const ReduceLaunch& args, StreamHandle stream);

// What the two small-M paths (the streaming pair and the persistent kernel) are given: the routing, the rows,
// the converted weights, and where the intermediate and the output go.
struct SmallBatchLaunch {
  const std::int32_t* topk_ids;
  const std::int32_t* expert_map;  // nullptr = identity
  int num_experts;
  std::int64_t num_local_experts;
  std::int64_t num_tokens;
  int top_k;
  const void* hidden;  // bf16 [M, lda], 16-byte aligned rows
  std::int64_t lda;
  std::int64_t a_columns;  // multiple of 8
  const void* w13;         // converted [E_local, 2 I_pad, H_k] in k-panels (weight_panels.cuh)
  const void* w2;          // converted [E_local, H_n, I_pad] in k-panels
  std::int64_t hidden_size;
  std::int64_t hidden_padded_k;
  std::int64_t hidden_padded_n;
  std::int64_t intermediate_padded;
  const float* topk_weights;
  void* intermediate;  // [M * k, I_pad] bf16 scratch
  void* out;           // [M, H] bf16
  int activation;      // 0 = SiLU, 1 = GELU
};

// The small-M streaming path (stream_small_m.cuh): GEMM1 + activation, then GEMM2 + routing weight + the
// sum over top-k straight into out [M, H]. No align and no reduce pass.
// Whether the streaming path's fixed limits (tokens, pairs, local experts, shared memory) admit the call.
bool stream_path_fits(std::int64_t num_tokens, int top_k, std::int64_t num_local_experts,
                      std::size_t shared_memory_optin);
void launch_stream_experts(const SmallBatchLaunch& args, StreamHandle stream);

// The persistent decode path (persistent_decode.cuh, sm_90a): GEMM1 + activation, GEMM2 + routing weight and
// the sum over top-k in one cooperative launch of one block per SM, for M * k <= 64.
struct PersistentLaunch {
  SmallBatchLaunch batch;
  float* scratch;  // persistent_scratch_floats(...) fp32 scratch
  // persistent_counter_words(...) words, zero before the first forward; every forward leaves them at zero.
  // One forward at a time may use them (forwards on one stream).
  std::uint32_t* counters;
  // Index into persistent_shape_names(): box rows x warps per block (a shape whose accumulators do not fit
  // the batch's token fragments falls back to the first).
  int shape = 0;
  // Boxes each warp has requested at a time, counting the one it multiplies (0: its whole ring).
  int lookahead = 0;
};
// "rows x warps" of the persistent kernel's shapes (FUSEDMOE_CUDA_FUSED_PERSISTENT_SHAPE).
std::vector<std::string> persistent_shape_names();
// Whether the device and this build run the persistent path (compute capability 9.0, sm_90a code, its
// shared memory), and whether a call of M tokens fits it (M * k <= 64).
bool persistent_path_available(int compute_capability, std::size_t shared_memory_optin);
bool persistent_path_fits(std::int64_t num_tokens, int top_k, int compute_capability,
                          std::size_t shared_memory_optin);
// Its counters (per config) and fp32 scratch (per call; `num_sms` of the device).
std::int64_t persistent_counter_words(std::int64_t hidden, std::int64_t intermediate_padded);
std::int64_t persistent_scratch_floats(std::int64_t num_tokens, int top_k, std::int64_t hidden, int num_sms);
void launch_persistent_experts(const PersistentLaunch& args, StreamHandle stream);

// hidden [M, H] -> [M, pitch], zero padded (rows that are not 16-byte multiples).
void launch_pad_rows(const void* source, std::int64_t num_rows, std::int64_t columns, void* destination,
                     std::int64_t pitch, StreamHandle stream);

// One expert's canonical weights into cuda_fused's layout (see convert_weights.cpp).
void launch_convert_w13(const void* source, std::int64_t intermediate, std::int64_t hidden, void* destination,
                        std::int64_t intermediate_padded, std::int64_t depth, StreamHandle stream);
void launch_convert_w2(const void* source, std::int64_t hidden, std::int64_t intermediate, void* destination,
                       std::int64_t hidden_padded, std::int64_t intermediate_padded, StreamHandle stream);

}  // namespace fusedmoe::cuda_fused
