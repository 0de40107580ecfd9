// cuda_fused's forward: align, GEMM1 + activation, GEMM2 + routing weight, reduce over top-k, all on
// the caller's stream, in workspace sized beforehand.
#include "backends/cuda_fused/experts.hpp"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <utility>

#include "backends/cuda_common/cuda_check.hpp"
#include "backends/cuda_fused/kernels/launch.hpp"
#include "core/check.hpp"
#include "core/env.hpp"

namespace fusedmoe::cuda_fused {

namespace {

std::int64_t round_up(std::int64_t value, std::int64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

// Worst-case sizes of a call with `num_tokens` tokens, whatever tile the table picks.
struct Plan {
  std::int64_t pairs;                // M * k (token, slot) pairs
  std::int64_t hidden_pitch;         // H rounded up to 8: the padded hidden copy and the per-pair rows
  std::int64_t intermediate_padded;  // I_pad
  std::int64_t rows_capacity;        // sorted rows: every expert padded to the largest block_m
  std::int64_t blocks_capacity;      // blocks of the smallest block_m over those rows
};

Plan make_plan(std::int64_t num_tokens, std::int64_t top_k, std::int64_t num_local_experts,
               std::int64_t hidden, std::int64_t intermediate) {
  Plan plan{};
  plan.pairs = num_tokens * top_k;
  plan.hidden_pitch = round_up(hidden, 8);
  plan.intermediate_padded = round_up(intermediate, kWeightKPadding);
  // Every tile's rows fit: a tile of block_m rows uses max_blocks * block_m < pairs + experts * (block_m - 1)
  // + block_m rows. round_up(pairs + experts * 191, 192) already holds that for every block_m of the table
  // (16-192), but only by an argument about multiples of 64; one more block of the largest makes it obvious.
  const std::int64_t padding = std::min(num_local_experts, plan.pairs) * (kLargestBlockM - 1);
  plan.rows_capacity = round_up(plan.pairs + padding, kLargestBlockM) + kLargestBlockM;
  plan.blocks_capacity = plan.rows_capacity / kSmallestBlockM;
  return plan;
}

// Blocks the align step can fill with this tile: every expert with tokens rounds up to block_m.
std::int64_t max_blocks(const Plan& plan, std::int64_t num_local_experts, int block_m) {
  const std::int64_t rows = plan.pairs + std::min(num_local_experts, plan.pairs) * (block_m - 1);
  return (rows + block_m - 1) / block_m;
}

}  // namespace

namespace {

// FUSEDMOE_CUDA_FUSED_WGMMA=off keeps the heuristic on the mma.sync tiles (A/B measurements).
bool wgmma_disabled_from_env() {
  return env_switch("FUSEDMOE_CUDA_FUSED_WGMMA", "on", "off");
}
bool sorted_rows_disabled_from_env() {
  return env_switch("FUSEDMOE_CUDA_FUSED_SORTED_ROWS", "on", "off");
}
bool tma_rows_disabled_from_env() {
  return env_switch("FUSEDMOE_CUDA_FUSED_TMA_ROWS", "on", "off");
}
bool async_signal_disabled_from_env() {
  return env_switch("FUSEDMOE_CUDA_FUSED_ASYNC_SIGNAL", "on", "off");
}
bool fixed_raster_from_env() {
  return env_choice("FUSEDMOE_CUDA_FUSED_RASTER", {"experts", "fixed"}) == 1;
}
// FUSEDMOE_CUDA_FUSED_RASTER_ROWS=<tile rows>: the expert groups' most rows instead of raster_group_rows's
// (tests split runs into chunks with it; 0 when unset).
int raster_rows_from_env() {
  const std::optional<int> rows = env_positive_int("FUSEDMOE_CUDA_FUSED_RASTER_ROWS");
  if (rows && *rows > kRasterMaxGroupRows) {
    throw InvalidArgument(str_cat("FUSEDMOE_CUDA_FUSED_RASTER_ROWS=", *rows, ": expected 1 .. ",
                                  kRasterMaxGroupRows, " tile rows"));
  }
  return rows.value_or(0);
}
// The enums' orders are the values' orders (the first is the default).
CudaFusedExperts::Handover handover_from_env() {
  return static_cast<CudaFusedExperts::Handover>(
      env_choice("FUSEDMOE_CUDA_FUSED_HANDOVER", {"auto", "on", "off"}));
}
CudaFusedExperts::AlignMode align_mode_from_env() {
  return static_cast<CudaFusedExperts::AlignMode>(
      env_choice("FUSEDMOE_CUDA_FUSED_ALIGN", {"auto", "single", "multi"}));
}

// Up to this many (token, slot) pairs the automatic align runs in one block (one launch instead of a memset
// and two; measured on the H100, bench/results/2026-11-28-h100-session12.md: at 2048 and 4096 pairs 1-2%
// faster than the multi-block align at qwen3/olmoe M=256/512, level at 8192).
constexpr std::int64_t kSingleBlockAlignPairs = 4096;

constexpr std::int64_t kBlockRunWords = sizeof(BlockRun) / sizeof(std::int32_t);

// Decode's L2 warm-up (kernels/l2_warm_up.cuh): GEMM1's blocks request about kWarmBytes of the routed
// experts' first gate/up weights into the L2 while the align runs (about what the idle DRAM delivers in that
// time), where each routed expert owns one row block (M <= block_m, at most 32 pairs).
constexpr std::int64_t kWarmMaxPairs = 32;
constexpr std::int64_t kWarmBytes = std::int64_t{8} << 20;
constexpr std::int64_t kWarmMaxBytes = std::int64_t{16} << 20;  // a third of the H100's L2

// The warm-up's budget in bytes, 0 for none: FUSEDMOE_CUDA_FUSED_WARM=on|off and FUSEDMOE_CUDA_FUSED_WARM_MIB
// (1 .. 16, for tuning runs; kWarmBytes when unset).
std::int64_t warm_bytes_from_env() {
  if (env_switch("FUSEDMOE_CUDA_FUSED_WARM", "on", "off")) return 0;
  const std::optional<int> mib = env_positive_int("FUSEDMOE_CUDA_FUSED_WARM_MIB");
  if (!mib) return kWarmBytes;
  if (*mib > kWarmMaxBytes >> 20) {
    throw InvalidArgument(str_cat("FUSEDMOE_CUDA_FUSED_WARM_MIB=", *mib,
                                  ": the L2 warm-up's budget must be 1 .. ", kWarmMaxBytes >> 20, " MiB"));
  }
  return std::int64_t{*mib} << 20;
}

// FUSEDMOE_CUDA_FUSED_PERSISTENT_SHAPE=<rows>x<warps> (tuning runs; the first shape when unset).
int persistent_shape_from_env() {
  const std::vector<std::string> names = persistent_shape_names();
  const std::optional<std::string> value = env_string("FUSEDMOE_CUDA_FUSED_PERSISTENT_SHAPE");
  if (!value) return 0;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (names[i] == *value) return static_cast<int>(i);
  }
  std::string listed;
  for (const std::string& name : names) listed += (listed.empty() ? "" : ", ") + name;
  throw InvalidArgument(
      str_cat("FUSEDMOE_CUDA_FUSED_PERSISTENT_SHAPE='", *value, "': expected one of ", listed));
}

// FUSEDMOE_CUDA_FUSED_PERSISTENT_AHEAD=<boxes> each warp of the persistent kernel keeps requested at a time,
// counting the one it multiplies (tuning runs). Default 1: on the H100 one box per warp (4 MB in flight over
// the grid) was as fast as or faster than deeper rings at every decode cell measured (qwen3-30b-a3b M=1 50 us
// against 53 with 6, deepseek-v3 M=8 1.81 ms against 1.96: bench/results/2026-11-28-h100-session11.md).
int persistent_lookahead_from_env() {
  return env_positive_int("FUSEDMOE_CUDA_FUSED_PERSISTENT_AHEAD").value_or(1);
}

bool persistent_runs_on(const MoeConfig& config) {
  if (!config.device.is_cuda() || !Platform::detect(config.device).cuda.available) return false;
  const cuda::DeviceAttributes& device = cuda::device_attributes(config.device.index);
  return persistent_path_available(device.compute_capability, device.shared_memory_per_block_optin);
}

// The persistent path's counters, zeroed, where the device runs it (an empty tensor elsewhere).
Tensor persistent_counters(const MoeConfig& config) {
  if (!persistent_runs_on(config)) return Tensor{};
  cuda::DeviceGuard guard(config.device.index);
  return Tensor::zeros(
      DType::int32,
      {persistent_counter_words(config.hidden_size, round_up(config.intermediate_size, kWeightKPadding))},
      config.device);
}

}  // namespace

CudaFusedExperts::CudaFusedExperts(const MoeConfig& config, std::optional<ForwardChoice> forced,
                                   SwitchesFromEnvironment)
    : config_(config),
      align_mode_(align_mode_from_env()),
      dependent_launch_(cuda::dependent_launch_requested()),
      wgmma_disabled_(wgmma_disabled_from_env()),
      handover_(handover_from_env()),
      sorted_rows_disabled_(sorted_rows_disabled_from_env()),
      tma_rows_disabled_(tma_rows_disabled_from_env()),
      async_signal_disabled_(async_signal_disabled_from_env()),
      fixed_raster_(fixed_raster_from_env()),
      raster_rows_(raster_rows_from_env()),
      warm_bytes_(warm_bytes_from_env()),
      forced_(std::move(forced)),
      persistent_shape_(persistent_shape_from_env()),
      persistent_lookahead_(persistent_lookahead_from_env()) {}

CudaFusedExperts::CudaFusedExperts(const MoeConfig& config)
    : CudaFusedExperts(config, forced_choice_from_env(), SwitchesFromEnvironment{}) {
  if (!forced_) tuned_ = tuned_choices(config);
  if (may_choose_persistent()) persistent_counters_ = persistent_counters(config);
}

CudaFusedExperts::CudaFusedExperts(const MoeConfig& config, ForwardChoice forced)
    : CudaFusedExperts(config, std::optional<ForwardChoice>(forced), SwitchesFromEnvironment{}) {
  if (may_choose_persistent()) persistent_counters_ = persistent_counters(config);
}

bool CudaFusedExperts::may_choose_persistent() const {
  if (forced_) return forced_->persistent;
  if (!tuned_) return false;
  return std::any_of(tuned_->buckets.begin(), tuned_->buckets.end(),
                     [](const TuneBucket& bucket) { return parse_forward_choice(bucket.choice).persistent; });
}

ForwardChoice CudaFusedExperts::choice_for(std::int64_t num_tokens) const {
  if (forced_) return *forced_;
  if (tuned_) return parse_forward_choice(tuned_->choice_for(num_tokens));
  return ForwardChoice{};
}

std::size_t CudaFusedExperts::workspace_bytes(const ExpertsProblem& problem) const {
  const std::int64_t experts = problem.num_local_experts;
  const Plan plan =
      make_plan(problem.num_tokens, problem.top_k, experts, problem.hidden_size, problem.intermediate_size);
  return WorkspaceArena::bytes_for(DType::int32, experts + 1) +           // counts (cursors), a ticket
         WorkspaceArena::bytes_for(DType::int64, experts + 1) +           // padded offsets
         WorkspaceArena::bytes_for(DType::int32, plan.blocks_capacity) +  // block -> expert
         WorkspaceArena::bytes_for(DType::int32, kBlockRunWords * plan.blocks_capacity) +  // block -> run
         WorkspaceArena::bytes_for(DType::int32, plan.rows_capacity) +                     // sorted pair ids
         WorkspaceArena::bytes_for(DType::bf16, problem.num_tokens * plan.hidden_pitch) +  // padded hidden
         WorkspaceArena::bytes_for(DType::bf16,
                                   plan.rows_capacity * plan.intermediate_padded) +  // intermediate
         // weighted rows: per pair, or in sorted order (at most rows_capacity, which is >= pairs)
         WorkspaceArena::bytes_for(DType::bf16, plan.rows_capacity * plan.hidden_pitch) +
         WorkspaceArena::bytes_for(DType::int32, plan.pairs) +  // each pair's sorted row
         WorkspaceArena::bytes_for(DType::int64,
                                   tile_counter_words(plan.blocks_capacity)) +  // ws tiles' counters
         (persistent_counters_.defined()
              ? WorkspaceArena::bytes_for(DType::fp32, persistent_scratch(problem.num_tokens, problem.top_k,
                                                                          problem.hidden_size))
              : 0);  // the persistent path's partial sums and per-pair rows
}

std::int64_t CudaFusedExperts::persistent_scratch(std::int64_t num_tokens, std::int64_t top_k,
                                                  std::int64_t hidden) const {
  return persistent_scratch_floats(num_tokens, static_cast<int>(top_k), hidden,
                                   cuda::device_attributes(config_.device.index).num_sms);
}

void CudaFusedExperts::apply(const DispatchedTokens& dispatched, const ExpertWeights& weights,
                             const TensorView& expert_out, WorkspaceArena& workspace,
                             const ExecContext& context) {
  const auto* converted = dynamic_cast<const CudaFusedWeights*>(&weights);
  FUSEDMOE_ASSERT(converted != nullptr, "backend cuda_fused was given weights converted by another backend");
  const TensorView& hidden = dispatched.hidden;
  const std::int64_t num_tokens = hidden.size(0);
  if (num_tokens == 0) return;
  FUSEDMOE_ASSERT(hidden.dtype() == DType::bf16 && expert_out.dtype() == DType::bf16 &&
                  hidden.device().is_cuda());
  const int top_k = static_cast<int>(dispatched.topk_ids.size(1));
  const std::int64_t experts = converted->num_experts, hidden_size = converted->hidden;
  const Plan plan = make_plan(num_tokens, top_k, experts, hidden_size, converted->intermediate);
  FUSEDMOE_CHECK(plan.pairs <= INT32_MAX, "[cuda_fused] M * k = ", plan.pairs,
                 " (token, slot) pairs in one call: expected at most 2^31 - 1 (lower max_chunk_tokens)");

  const int device_index = hidden.device().index;
  cuda::DeviceGuard guard(device_index);
  const StreamHandle stream = context.stream;
  const auto* ids = dispatched.topk_ids.data_as<const std::int32_t>();
  const auto* map =
      dispatched.expert_map.defined() ? dispatched.expert_map.data_as<const std::int32_t>() : nullptr;
  const cuda::DeviceAttributes& device = cuda::device_attributes(device_index);
  const ForwardChoice choice = choice_for(num_tokens);
  const bool persistent = choice.persistent && persistent_counters_.defined() &&
                          persistent_path_fits(num_tokens, top_k, device.compute_capability,
                                               device.shared_memory_per_block_optin);
  const bool streaming =
      choice.stream && stream_path_fits(num_tokens, top_k, experts, device.shared_memory_per_block_optin);
  const bool wgmma = wgmma_tiles_available(device.compute_capability, device.shared_memory_per_block_optin);
  const TileConfig tile =
      choice.tile ? tile_config(*choice.tile)
                  : choose_tile(TileProblem{.num_tokens = num_tokens,
                                            .top_k = top_k,
                                            .num_local_experts = experts,
                                            .intermediate_padded = plan.intermediate_padded,
                                            .num_sms = device.num_sms,
                                            .wgmma = wgmma && !wgmma_disabled_,
                                            .shared_memory_optin = device.shared_memory_per_block_optin});
  FUSEDMOE_CHECK(!tile.wgmma || wgmma, "[cuda_fused] tile ", to_string(tile.id), " uses wgmma: it needs ",
                 "compute capability 9.0 and a build with sm_90a; ", device.name, " is sm_",
                 device.compute_capability, ". Choose an mma.sync tile (m16 .. m128)");
  FUSEDMOE_CHECK(tile_available(tile, device.compute_capability, device.shared_memory_per_block_optin),
                 "[cuda_fused] tile ", to_string(tile.id), " needs ", tile.shared_memory_bytes,
                 " bytes of shared memory per block; ", device.name, " allows ",
                 device.shared_memory_per_block_optin, ". Choose a smaller tile (m16 .. m128)");
  const std::int64_t blocks = max_blocks(plan, experts, tile.block_m);
  const TileConfig& gemm2_tile = choice.tile && choice.gemm2_tile ? tile_config(*choice.gemm2_tile) : tile;
  FUSEDMOE_CHECK(tile_available(gemm2_tile, device.compute_capability, device.shared_memory_per_block_optin),
                 "[cuda_fused] GEMM2's tile ", to_string(gemm2_tile.id), " does not run on ", device.name,
                 ": choose a GEMM2 tile this device runs (", to_string(tile.id), " alone, for one)");
  FUSEDMOE_ASSERT(gemm2_tile.block_m == tile.block_m && gemm2_tile.warp_specialized == tile.warp_specialized,
                  "[cuda_fused] GEMM2's tile must have GEMM1's rows (parse_forward_choice checks it)");

  auto* counts = workspace.take(DType::int32, {experts + 1}).data_as<std::int32_t>();
  auto* offsets = workspace.take(DType::int64, {experts + 1}).data_as<std::int64_t>();
  auto* block_expert = workspace.take(DType::int32, {plan.blocks_capacity}).data_as<std::int32_t>();
  auto* block_runs = reinterpret_cast<BlockRun*>(
      workspace.take(DType::int32, {kBlockRunWords * plan.blocks_capacity}).data_as<std::int32_t>());
  auto* sorted_ids = workspace.take(DType::int32, {plan.rows_capacity}).data_as<std::int32_t>();
  const TensorView padded_hidden = workspace.take(DType::bf16, {num_tokens * plan.hidden_pitch});
  const TensorView intermediate =
      workspace.take(DType::bf16, {plan.rows_capacity * plan.intermediate_padded});
  // GEMM2's weighted rows: per pair, or (sorted_rows) in sorted order, found by each pair's sorted row.
  const TensorView weighted_rows = workspace.take(DType::bf16, {plan.rows_capacity * plan.hidden_pitch});
  auto* pair_positions = workspace.take(DType::int32, {plan.pairs}).data_as<std::int32_t>();
  auto* tile_counters =
      workspace.take(DType::int64, {tile_counter_words(plan.blocks_capacity)}).data_as<std::uint64_t>();
  FUSEDMOE_ASSERT(blocks <= plan.blocks_capacity);
  const bool handover = tile.warp_specialized &&
                        (handover_ == Handover::on || (handover_ == Handover::automatic &&
                                                       (plan.pairs + experts - 1) / experts <= tile.block_m));
  auto* row_done = handover ? reinterpret_cast<std::uint32_t*>(tile_counters + 2) : nullptr;
  const bool sorted_rows = tile.warp_specialized && !sorted_rows_disabled_;
  // The warp-specialised tiles take their tiles in expert groups (kernels/raster.hpp).
  BlockRun* const expert_raster = tile.warp_specialized && !fixed_raster_ ? block_runs : nullptr;
  // The warp-specialised GEMM2 reads its A rows by TMA; GEMM1 then writes its all-padding warps' zeros too.
  const bool tma_rows = tile.warp_specialized && !tma_rows_disabled_;
  // The warp-specialised tiles address sorted rows by int32 TMA coordinates (GEMM1's stores, GEMM2's A rows
  // and sorted rows).
  FUSEDMOE_CHECK(
      !tile.warp_specialized || plan.rows_capacity <= INT32_MAX, "[cuda_fused] ", num_tokens,
      " tokens x top_k ", top_k, " pad to ", plan.rows_capacity,
      " sorted rows: the warp-specialised tiles address at most 2^31 - 1 (lower max_chunk_tokens)");
  float* persistent_scratch_buffer =
      persistent_counters_.defined()
          ? workspace.take(DType::fp32, {persistent_scratch(num_tokens, top_k, hidden_size)}).data_as<float>()
          : nullptr;

  // cp.async moves 16-byte chunks: rows that are not 16-byte multiples (or start unaligned) are copied first.
  const void* a = hidden.data();
  std::int64_t lda = hidden_size, a_columns = hidden_size;
  if (hidden_size % 8 != 0 || reinterpret_cast<std::uintptr_t>(hidden.data()) % 16 != 0) {
    launch_pad_rows(hidden.data(), num_tokens, hidden_size, padded_hidden.data(), plan.hidden_pitch, stream);
    a = padded_hidden.data();
    lda = a_columns = plan.hidden_pitch;
  }

  const SmallBatchLaunch batch{.topk_ids = ids,
                               .expert_map = map,
                               .num_experts = static_cast<int>(config_.num_experts),
                               .num_local_experts = experts,
                               .num_tokens = num_tokens,
                               .top_k = top_k,
                               .hidden = a,
                               .lda = lda,
                               .a_columns = a_columns,
                               .w13 = converted->w13.data(),
                               .w2 = converted->w2.data(),
                               .hidden_size = hidden_size,
                               .hidden_padded_k = converted->hidden_padded_k,
                               .hidden_padded_n = converted->hidden_padded_n,
                               .intermediate_padded = plan.intermediate_padded,
                               .topk_weights = dispatched.topk_weights.data_as<const float>(),
                               .intermediate = intermediate.data(),
                               .out = expert_out.data(),
                               .activation = config_.activation == Activation::silu ? 0 : 1};
  if (persistent) {
    FUSEDMOE_ASSERT(
        persistent_counters_.numel() >= persistent_counter_words(hidden_size, plan.intermediate_padded),
        "[cuda_fused] the persistent path's counters were sized for another shape");
    launch_persistent_experts(PersistentLaunch{.batch = batch,
                                               .scratch = persistent_scratch_buffer,
                                               .counters = persistent_counters_.data_as<std::uint32_t>(),
                                               .shape = persistent_shape_,
                                               .lookahead = persistent_lookahead_},
                              stream);
    return;
  }
  if (streaming) {
    launch_stream_experts(batch, stream);
    return;
  }
  launch_align(
      AlignLaunch{.topk_ids = ids,
                  .num_pairs = plan.pairs,
                  .expert_map = map,
                  .num_experts = static_cast<int>(config_.num_experts),
                  .num_local_experts = static_cast<int>(experts),
                  .block_m = tile.block_m,
                  .counts = counts,
                  .offsets = offsets,
                  .sorted_ids = sorted_ids,
                  .block_expert = block_expert,
                  .max_blocks = blocks,
                  .single_block = align_mode_ == AlignMode::single || (align_mode_ == AlignMode::automatic &&
                                                                       plan.pairs <= kSingleBlockAlignPairs),
                  .zero_words = tile.warp_specialized ? tile_counters : nullptr,  // see Gemm1Launch
                  .zero_word_count = tile_counter_words(blocks),
                  .pair_positions = sorted_rows ? pair_positions : nullptr,
                  .block_runs = expert_raster,
                  .parity_order = tile.cluster_m == 2 || gemm2_tile.cluster_m == 2},
      stream);
  // Decode's L2 warm-up: each routed expert's first k-panels of gate/up rows, about warm_bytes_ in all (at
  // least one panel; none where one panel of every routed expert would exceed kWarmMaxBytes).
  L2WarmUp warm{};
  if (warm_bytes_ > 0 && dependent_launch_ && !tile.wgmma && device.compute_capability >= 90 &&
      num_tokens <= tile.block_m && plan.pairs <= kWarmMaxPairs) {
    const std::int64_t panel_bytes = std::min(plan.pairs, experts) * 2 * plan.intermediate_padded * 64 * 2;
    if (panel_bytes <= kWarmMaxBytes) {
      warm = L2WarmUp{
          .topk_ids = ids,
          .expert_map = map,
          .num_pairs = static_cast<int>(plan.pairs),
          .num_experts = static_cast<int>(config_.num_experts),
          .num_local_experts = static_cast<int>(experts),
          .panels = static_cast<int>(std::clamp<std::int64_t>(
              warm_bytes_ / panel_bytes, 1, std::min<std::int64_t>(32, converted->hidden_padded_k / 64)))};
    }
  }
  const Gemm2Launch gemm2{.tile = &gemm2_tile,
                          .intermediate = intermediate.data(),
                          .intermediate_padded = plan.intermediate_padded,
                          .w2 = converted->w2.data(),
                          .num_local_experts = experts,
                          .hidden_padded = converted->hidden_padded_n,
                          .hidden = hidden_size,
                          .sorted_ids = sorted_ids,
                          .block_expert = block_expert,
                          .max_blocks = blocks,
                          .topk_weights = dispatched.topk_weights.data_as<const float>(),
                          .out_rows = weighted_rows.data(),
                          .pitch = plan.hidden_pitch,
                          .dependent_launch = dependent_launch_,
                          .tile_counters = tile_counters,
                          .used_rows = offsets + experts,
                          .row_done = row_done,
                          .sorted_rows = sorted_rows,
                          .tma_rows = tma_rows,
                          .async_signal = !async_signal_disabled_,
                          .gemm1_tile = &tile,
                          .block_runs = expert_raster,
                          .raster_rows = raster_rows_};
  launch_gemm1(Gemm1Launch{.tile = &tile,
                           .hidden = a,
                           .lda = lda,
                           .a_columns = a_columns,
                           .w13 = converted->w13.data(),
                           .weight_depth = converted->hidden_padded_k,
                           .num_local_experts = experts,
                           .intermediate_padded = plan.intermediate_padded,
                           .sorted_ids = sorted_ids,
                           .block_expert = block_expert,
                           .max_blocks = blocks,
                           .top_k = top_k,
                           .intermediate = intermediate.data(),
                           .activation = config_.activation == Activation::silu ? 0 : 1,
                           .dependent_launch = dependent_launch_,
                           .successor_fills_a_wave = dependent_launch_ && gemm2_fills_a_wave(gemm2),
                           .tile_counters = tile_counters,
                           .used_rows = offsets + experts,
                           .row_done = row_done,
                           .warm = warm,
                           .write_padding_warps = tma_rows,
                           .async_signal = !async_signal_disabled_,
                           .block_runs = expert_raster,
                           .raster_rows = raster_rows_},
               stream);
  launch_gemm2(gemm2, stream);
  launch_reduce(ReduceLaunch{.rows = weighted_rows.data(),
                             .pitch = plan.hidden_pitch,
                             .topk_ids = ids,
                             .expert_map = map,
                             .num_experts = static_cast<int>(config_.num_experts),
                             .num_local_experts = static_cast<int>(experts),
                             .top_k = top_k,
                             .num_tokens = num_tokens,
                             .hidden = hidden_size,
                             .out = expert_out.data(),
                             .dependent_launch = dependent_launch_,
                             .pair_positions = sorted_rows ? pair_positions : nullptr},
                stream);
}

}  // namespace fusedmoe::cuda_fused
