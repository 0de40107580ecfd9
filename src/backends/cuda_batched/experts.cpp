// cuda_batched's forward: a fixed-layout align from the device-side counts, then cuda_fused's GEMM1 (top_k 1
// over the slabs viewed as [E_local * capacity, H]) and GEMM2 (weight 1 per slot: unweighted rows), all on
// the caller's stream, in workspace sized beforehand.
#include "backends/cuda_batched/experts.hpp"

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <set>
#include <tuple>

#include "backends/cuda_batched/kernels/launch.hpp"
#include "backends/cuda_common/cuda_check.hpp"
#include "backends/cuda_fused/experts.hpp"
#include "backends/cuda_fused/kernels/launch.hpp"
#include "core/check.hpp"
#include "core/env.hpp"
#include "core/tensor_checks.hpp"
#include "fusedmoe/log.hpp"

namespace fusedmoe::cuda_batched {

using cuda_fused::kTileBuckets;
using cuda_fused::kTileConfigs;
using cuda_fused::TileConfig;
using cuda_fused::TileId;

namespace {

constexpr std::string_view kComponent = "cuda_batched";

std::int64_t round_up(std::int64_t value, std::int64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

// Worst-case sizes of a call on slabs of `capacity` rows, whatever fitting tile it uses.
struct Plan {
  std::int64_t slots;                // E_local * capacity
  std::int64_t hidden_pitch;         // H rounded up to 8: rows of the padded hidden copy and pitched output
  std::int64_t intermediate_padded;  // I_pad
  std::int64_t rows_capacity;        // sorted rows: every expert padded by the tallest fitting tile
  std::int64_t blocks_capacity;      // blocks of the 16-row tiles (the most blocks any tile has)
  bool pad_hidden;                   // H % 8 != 0: GEMM1 reads valid rows from a padded copy
  // H % 8 != 0: GEMM2 writes a pitched scratch, valid rows copied out (the wgmma epilogues store 16-byte
  // groups, the mma.sync ones bf16 pairs: rows of other lengths are not written in place).
  bool pitched_out;
};

Plan make_plan(std::int64_t num_local_experts, std::int64_t capacity, std::int64_t hidden,
               std::int64_t intermediate) {
  Plan plan{};
  plan.slots = num_local_experts * capacity;
  plan.hidden_pitch = round_up(hidden, 8);
  plan.intermediate_padded = round_up(intermediate, cuda_fused::kWeightKPadding);
  std::int64_t rows_per_expert = 0;
  for (const TileConfig& tile : kTileConfigs) {
    if (tile_fits(tile, capacity))
      rows_per_expert = std::max(rows_per_expert, padded_rows(capacity, tile.block_m));
  }
  plan.rows_capacity = num_local_experts * rows_per_expert;
  plan.blocks_capacity =
      num_local_experts * padded_rows(capacity, cuda_fused::kSmallestBlockM) / cuda_fused::kSmallestBlockM;
  plan.pad_hidden = hidden % 8 != 0;
  plan.pitched_out = hidden % 8 != 0;
  return plan;
}

// FUSEDMOE_CUDA_BATCHED_WGMMA=off keeps the heuristic on the mma.sync tiles (A/B runs; one kernel family).
bool wgmma_disabled_from_env() {
  return env_switch("FUSEDMOE_CUDA_BATCHED_WGMMA", "on", "off");
}

std::optional<TileId> tile_from_env() {
  const std::optional<std::string> name = env_string("FUSEDMOE_CUDA_BATCHED_TILE");
  if (!name || *name == "auto") return std::nullopt;
  const std::optional<TileId> id = cuda_fused::tile_id_from_name(*name);
  FUSEDMOE_CHECK(id.has_value(), "FUSEDMOE_CUDA_BATCHED_TILE='", *name, "': expected a tile (",
                 cuda_fused::tile_names(), ") or auto");
  return id;
}

void log_choice(const BatchedTileProblem& problem, std::int64_t rows_per_expert, const TileConfig& chosen) {
  if (!log_enabled(LogLevel::debug)) return;
  static std::mutex mutex;
  static std::set<std::tuple<std::int64_t, int, std::int64_t, std::int64_t, std::int64_t>> seen;
  std::lock_guard lock(mutex);
  if (seen.emplace(problem.capacity, problem.top_k, problem.num_experts, problem.num_local_experts,
                   problem.intermediate_padded)
          .second) {
    log(LogLevel::debug, str_cat("[cuda_batched] capacity=", problem.capacity, " k=", problem.top_k,
                                 " E=", problem.num_experts, " E_local=", problem.num_local_experts,
                                 " I_pad=", problem.intermediate_padded, ": ~", rows_per_expert,
                                 " rows per expert -> tile ", chosen.name));
  }
}

}  // namespace

bool tile_fits(const TileConfig& tile, std::int64_t capacity) {
  return tile.block_m <=
         std::max<std::int64_t>(round_up(capacity, cuda_fused::kSmallestBlockM), cuda_fused::kSmallestBlockM);
}

std::int64_t padded_rows(std::int64_t capacity, int block_m) {
  return round_up(capacity, block_m);
}

const TileConfig& choose_tile(const BatchedTileProblem& problem) {
  const std::int64_t experts = std::max<std::int64_t>(problem.num_experts, 1);
  const std::int64_t capacity = std::max<std::int64_t>(problem.capacity, 1);
  const std::int64_t local_experts = std::max<std::int64_t>(problem.num_local_experts, 1);
  // A slab is sized for the worst case (every token on one expert); the expected fill is what the GEMMs see.
  const std::int64_t rows_per_expert =
      std::clamp<std::int64_t>((capacity * problem.top_k + experts - 1) / experts, 1, capacity);
  // cuda_fused's heuristic on the standard-format problem with the same rows: rows_per_expert rows on each
  // local expert, k = 1 (its log line names that M). Then no taller block than the slab. At <= 16 rows a
  // wgmma tile taller than the slab gives way to the heuristic's choice without wgmma (a streaming tile,
  // which the shorter tiles of fitted_tile's chain do not include).
  cuda_fused::TileProblem standard{.num_tokens = rows_per_expert * local_experts,
                                   .top_k = 1,
                                   .num_local_experts = local_experts,
                                   .intermediate_padded = problem.intermediate_padded,
                                   .num_sms = problem.num_sms,
                                   .wgmma = problem.wgmma,
                                   .shared_memory_optin = problem.shared_memory_optin};
  const TileConfig* heuristic = &cuda_fused::choose_tile(standard);
  if (heuristic->wgmma && !tile_fits(*heuristic, capacity) &&
      rows_per_expert <= cuda_fused::kStreamingMaxRowsPerExpert) {
    standard.wgmma = false;
    heuristic = &cuda_fused::choose_tile(standard);
  }
  const TileConfig& chosen = fitted_tile(heuristic->id, capacity);
  log_choice(problem, rows_per_expert, chosen);
  return chosen;
}

const TileConfig& fitted_tile(TileId forced, std::int64_t capacity) {
  const TileConfig& tile = cuda_fused::tile_config(forced);
  if (tile_fits(tile, capacity)) return tile;
  // The tallest tile of the heuristic's chain that fits (m16 always does).
  const TileConfig* fitting = &cuda_fused::tile_config(TileId::m16);
  for (const cuda_fused::TileBucket& bucket : kTileBuckets) {
    const TileConfig& candidate = cuda_fused::tile_config(bucket.tile);
    if (tile_fits(candidate, capacity) && candidate.block_m > fitting->block_m) fitting = &candidate;
  }
  return *fitting;
}

CudaBatchedExperts::CudaBatchedExperts(const MoeConfig& config, std::optional<TileId> forced)
    : config_(config),
      forced_(forced ? forced : tile_from_env()),
      wgmma_disabled_(wgmma_disabled_from_env()),
      dependent_launch_(cuda::dependent_launch_requested()) {}

std::size_t CudaBatchedExperts::workspace_bytes(const ExpertsProblem& problem) const {
  const Plan plan = make_plan(problem.num_local_experts, problem.num_tokens, problem.hidden_size,
                              problem.intermediate_size);
  return WorkspaceArena::bytes_for(DType::int32, plan.blocks_capacity) +  // block -> expert
         WorkspaceArena::bytes_for(DType::int32, plan.rows_capacity) +    // sorted slot ids
         WorkspaceArena::bytes_for(DType::fp32, plan.slots) +             // unit weights
         (plan.pad_hidden ? WorkspaceArena::bytes_for(DType::bf16, plan.slots * plan.hidden_pitch) : 0) +
         WorkspaceArena::bytes_for(DType::bf16, plan.rows_capacity * plan.intermediate_padded) +
         (plan.pitched_out ? WorkspaceArena::bytes_for(DType::bf16, plan.slots * plan.hidden_pitch) : 0) +
         WorkspaceArena::bytes_for(DType::int64, 2);  // the warp-specialised tiles' tile counters
}

void CudaBatchedExperts::apply(const DispatchedTokens& dispatched, const ExpertWeights& weights,
                               const TensorView& expert_out, WorkspaceArena& workspace,
                               const ExecContext& context) {
  const auto* converted = dynamic_cast<const cuda_fused::CudaFusedWeights*>(&weights);
  FUSEDMOE_ASSERT(converted != nullptr,
                  "backend cuda_batched was given weights converted by another backend");
  FUSEDMOE_CHECK(dispatched.format == ActivationFormat::batched,
                 "[cuda_batched] dispatched tokens: expected ", "the batched format, got ",
                 to_string(dispatched.format));
  const TensorView& hidden = dispatched.hidden;
  const std::int64_t experts = converted->num_experts, hidden_size = converted->hidden;
  check_dtype(kComponent, "dispatched.hidden", hidden, {DType::bf16});
  check_shape(kComponent, "dispatched.hidden", hidden, {experts, -1, hidden_size});
  const std::int64_t capacity = hidden.size(1);
  check_dtype(kComponent, "expert_out", expert_out, {DType::bf16});
  check_shape(kComponent, "expert_out", expert_out, {experts, capacity, hidden_size});
  check_dtype(kComponent, "dispatched.expert_num_tokens", dispatched.expert_num_tokens, {DType::int32});
  check_shape(kComponent, "dispatched.expert_num_tokens", dispatched.expert_num_tokens, {experts});
  FUSEDMOE_CHECK(hidden.device().is_cuda(), "[cuda_batched] dispatched.hidden: expected a CUDA tensor, got ",
                 to_string(hidden.device()));
  check_device(kComponent, "expert_out", expert_out, hidden.device());
  check_device(kComponent, "dispatched.expert_num_tokens", dispatched.expert_num_tokens, hidden.device());
  if (experts == 0 || capacity == 0) return;
  const Plan plan = make_plan(experts, capacity, hidden_size, converted->intermediate);
  // Slot ids travel as int32 through the GEMMs' sorted ids.
  FUSEDMOE_CHECK(plan.slots <= INT32_MAX, "[cuda_batched] E_local * capacity = ", plan.slots,
                 " slots: expected at most 2^31 - 1 (lower batched_capacity)");
  // cp.async reads 16-byte chunks and GEMM2 stores bf16 pairs: in place only from aligned bases (the
  // PrepareFinalize workspaces are 256-byte aligned); rows of other lengths go through padded copies.
  const auto address = [](const TensorView& view) { return reinterpret_cast<std::uintptr_t>(view.data()); };
  FUSEDMOE_CHECK(
      plan.pad_hidden || address(hidden) % 16 == 0, "[cuda_batched] dispatched.hidden: rows of ", hidden_size,
      " bf16 are read in place and must start 16-byte aligned; got address % 16 = ", address(hidden) % 16);
  FUSEDMOE_CHECK(plan.pitched_out || address(expert_out) % 16 == 0, "[cuda_batched] expert_out: rows of ",
                 hidden_size,
                 " bf16 are written in place and must start 16-byte aligned; got address % 16 = ",
                 address(expert_out) % 16);

  const int device_index = hidden.device().index;
  cuda::DeviceGuard guard(device_index);
  const StreamHandle stream = context.stream;
  const cuda::DeviceAttributes& device = cuda::device_attributes(device_index);
  const bool wgmma = !wgmma_disabled_ && cuda_fused::wgmma_tiles_available(
                                             device.compute_capability, device.shared_memory_per_block_optin);
  const TileConfig tile =
      forced_ ? fitted_tile(*forced_, capacity)
              : choose_tile(BatchedTileProblem{.capacity = capacity,
                                               .top_k = config_.routing.top_k,
                                               .num_experts = config_.num_experts,
                                               .num_local_experts = experts,
                                               .intermediate_padded = plan.intermediate_padded,
                                               .num_sms = device.num_sms,
                                               .wgmma = wgmma,
                                               .shared_memory_optin = device.shared_memory_per_block_optin});
  FUSEDMOE_CHECK(
      !tile.wgmma ||
          cuda_fused::wgmma_tiles_available(device.compute_capability, device.shared_memory_per_block_optin),
      "[cuda_batched] tile ", cuda_fused::to_string(tile.id),
      " uses wgmma: it needs compute "
      "capability 9.0 and a build with sm_90a; ",
      device.name, " is sm_", device.compute_capability, ". Choose an mma.sync tile (m16 .. m128)");
  FUSEDMOE_CHECK(
      cuda_fused::tile_available(tile, device.compute_capability, device.shared_memory_per_block_optin),
      "[cuda_batched] tile ", cuda_fused::to_string(tile.id), " needs ", tile.shared_memory_bytes,
      " bytes of shared memory per block; ", device.name, " allows ", device.shared_memory_per_block_optin,
      ". Choose a smaller tile (m16 .. m128)");
  const std::int64_t blocks_per_expert = padded_rows(capacity, tile.block_m) / tile.block_m;
  const std::int64_t blocks = experts * blocks_per_expert;
  const auto* counts = dispatched.expert_num_tokens.data_as<const std::int32_t>();

  auto* block_expert = workspace.take(DType::int32, {plan.blocks_capacity}).data_as<std::int32_t>();
  auto* sorted_ids = workspace.take(DType::int32, {plan.rows_capacity}).data_as<std::int32_t>();
  auto* unit_weights = workspace.take(DType::fp32, {plan.slots}).data_as<float>();
  const TensorView padded_hidden =
      plan.pad_hidden ? workspace.take(DType::bf16, {plan.slots * plan.hidden_pitch}) : TensorView();
  const TensorView intermediate =
      workspace.take(DType::bf16, {plan.rows_capacity * plan.intermediate_padded});
  const TensorView pitched_out =
      plan.pitched_out ? workspace.take(DType::bf16, {plan.slots * plan.hidden_pitch}) : TensorView();
  auto* tile_counters = workspace.take(DType::int64, {2}).data_as<std::uint64_t>();

  if (tile.warp_specialized)
    cuda_fused::launch_zero_tile_counters(tile_counters, 0, stream);  // see launch.hpp
  launch_batched_align(BatchedAlignLaunch{.counts = counts,
                                          .num_local_experts = experts,
                                          .capacity = capacity,
                                          .block_m = tile.block_m,
                                          .blocks_per_expert = blocks_per_expert,
                                          .sorted_ids = sorted_ids,
                                          .block_expert = block_expert,
                                          .unit_weights = unit_weights},
                       stream);
  const void* a = hidden.data();
  std::int64_t lda = hidden_size;
  if (plan.pad_hidden) {
    launch_batched_pad_rows(hidden.data(), counts, experts, capacity, hidden_size, padded_hidden.data(),
                            plan.hidden_pitch, stream);
    a = padded_hidden.data();
    lda = plan.hidden_pitch;
  }
  // top_k = 1: a sorted id is the slab row itself (e * capacity + i).
  cuda_fused::launch_gemm1(
      cuda_fused::Gemm1Launch{.tile = &tile,
                              .hidden = a,
                              .lda = lda,
                              .a_columns = lda,
                              .w13 = converted->w13.data(),
                              .weight_depth = converted->hidden_padded_k,
                              .num_local_experts = experts,
                              .intermediate_padded = plan.intermediate_padded,
                              .sorted_ids = sorted_ids,
                              .block_expert = block_expert,
                              .max_blocks = blocks,
                              .top_k = 1,
                              .intermediate = intermediate.data(),
                              .activation = config_.activation == Activation::silu ? 0 : 1,
                              .dependent_launch = dependent_launch_,
                              .tile_counters = tile_counters},
      stream);
  // Weight 1.0f: the product is exact, so the rows are the unweighted expert outputs rounded once to bf16.
  cuda_fused::launch_gemm2(
      cuda_fused::Gemm2Launch{.tile = &tile,
                              .intermediate = intermediate.data(),
                              .intermediate_padded = plan.intermediate_padded,
                              .w2 = converted->w2.data(),
                              .num_local_experts = experts,
                              .hidden_padded = converted->hidden_padded_n,
                              .hidden = hidden_size,
                              .sorted_ids = sorted_ids,
                              .block_expert = block_expert,
                              .max_blocks = blocks,
                              .topk_weights = unit_weights,
                              .out_rows = plan.pitched_out ? pitched_out.data() : expert_out.data(),
                              .pitch = plan.pitched_out ? plan.hidden_pitch : hidden_size,
                              .dependent_launch = dependent_launch_,
                              .tile_counters = tile_counters},
      stream);
  if (plan.pitched_out) {
    launch_batched_copy_out(pitched_out.data(), plan.hidden_pitch, counts, experts, capacity, hidden_size,
                            expert_out.data(), stream);
  }
}

}  // namespace fusedmoe::cuda_batched
