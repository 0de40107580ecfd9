// The fast CPU forward: sort by expert, gather, GEMM1 + activation, GEMM2 + weighted accumulation.
#include "backends/cpu_prepacked/prepacked_experts.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/check.hpp"
#include "core/elements.hpp"
#include "core/threading.hpp"

namespace fusedmoe::prepacked {

namespace {

constexpr std::int64_t kDepthBlock = 256;  // K slice: a 16 KiB panel slice stays in L1 across the slice

// 4-byte elements of a packed A tile per unit of depth: one fp32 (widen) or half a bf16 pair (pairs).
std::int64_t tile_elements(PanelLayout layout, std::int64_t depth, int tile_rows) {
  return (layout == PanelLayout::pairs ? depth / 2 : depth) * tile_rows;
}

// C (rows x 32) = packed A tile . panel, in K slices (kDepthBlock is even, so pairs never straddle).
void tile_product(const PanelKernelInfo& kernel, const std::uint32_t* a, int rows, const std::uint32_t* panel,
                  std::int64_t depth, float* c) {
  for (std::int64_t k0 = 0; k0 < depth; k0 += kDepthBlock) {
    const std::int64_t slice = std::min(kDepthBlock, depth - k0);
    kernel.kernel(a + tile_elements(kernel.layout, k0, kernel.max_rows), rows, panel + k0 * 16, slice, c,
                  k0 > 0);
  }
}

// Rows are grouped per expert into tiles of max_rows; tile_offsets[e] is the first tile of expert e.
std::int64_t max_tiles(std::int64_t rows, std::int64_t experts, int tile_rows) {
  return rows / tile_rows + experts;
}

}  // namespace

Support supports_prepacked(const MoeConfig& config, ActivationFormat format) {
  if (!config.device.is_cpu())
    return Support::no("runs on the CPU; config device is " + to_string(config.device));
  if (config.weight_dtype != DType::bf16) {
    return Support::no("needs bf16 weights; weight_dtype is " + std::string(to_string(config.weight_dtype)));
  }
  if (config.act_dtype != DType::bf16 && config.act_dtype != DType::fp32) {
    return Support::no("needs bf16 or fp32 activations; act_dtype is " +
                       std::string(to_string(config.act_dtype)));
  }
  if (format != ActivationFormat::standard) {
    return Support::no("consumes the standard format; the dispatch delivers " +
                       std::string(to_string(format)));
  }
  return Support::yes();
}

PrepackedExperts::PrepackedExperts(const MoeConfig& config, PanelKernelInfo kernel, std::string name)
    : config_(config), kernel_(kernel), name_(std::move(name)) {}

std::size_t PrepackedExperts::workspace_bytes(const ExpertsProblem& problem) const {
  const std::int64_t rows = problem.num_tokens * problem.top_k, experts = problem.num_local_experts;
  const std::int64_t intermediate_padded = (problem.intermediate_size + 15) / 16 * 16;
  const std::int64_t hidden_padded = (problem.hidden_size + kPanelWidth - 1) / kPanelWidth * kPanelWidth;
  const std::int64_t tile_floats = max_tiles(rows, experts, kernel_.max_rows) * kernel_.max_rows;
  // (sized for the widen layout: pairs tiles take half as many 4-byte elements, depth rounded up to even)
  return 2 * WorkspaceArena::bytes_for(DType::int64, experts + 1) +  // row and tile offsets
         WorkspaceArena::bytes_for(DType::int64, experts) +          // fill cursors
         WorkspaceArena::bytes_for(DType::int32, rows) +             // row token
         WorkspaceArena::bytes_for(DType::fp32, rows) +              // row weight
         WorkspaceArena::bytes_for(DType::fp32, tile_floats * (problem.hidden_size + 1)) +  // packed inputs
         WorkspaceArena::bytes_for(DType::fp32, tile_floats * intermediate_padded) +   // packed intermediate
         WorkspaceArena::bytes_for(DType::fp32, problem.num_tokens * hidden_padded) +  // output sums
         WorkspaceArena::bytes_for(DType::int64, 2 * experts * (intermediate_padded / 16));  // tasks
}

void PrepackedExperts::apply(const DispatchedTokens& dispatched, const ExpertWeights& weights,
                             const TensorView& expert_out, WorkspaceArena& workspace,
                             const ExecContext& context) {
  const auto* packed = dynamic_cast<const PrepackedWeights*>(&weights);
  FUSEDMOE_ASSERT(packed != nullptr, "backend ", name_, " was given weights converted by another backend");
  const std::int64_t num_tokens = dispatched.hidden.size(0);
  const std::int64_t top_k = dispatched.topk_ids.size(1);
  const std::int64_t experts = packed->num_experts;
  const std::int64_t hidden = packed->hidden, intermediate_padded = packed->intermediate_padded;
  const std::int64_t hidden_padded = packed->hidden_padded;
  const int num_threads = resolve_num_threads(context);

  // 1. Counting sort of (token, slot) by local expert; within an expert, ascending (token, slot).
  auto* offsets = workspace.take(DType::int64, {experts + 1}).data_as<std::int64_t>();
  auto* cursor = workspace.take(DType::int64, {experts}).data_as<std::int64_t>();
  const auto* ids = dispatched.topk_ids.data_as<const std::int32_t>();
  const auto* routing = dispatched.topk_weights.data_as<const float>();
  const auto* map =
      dispatched.expert_map.defined() ? dispatched.expert_map.data_as<const std::int32_t>() : nullptr;
  auto local_of = [&](std::int64_t index) -> std::int32_t { return map ? map[ids[index]] : ids[index]; };
  std::fill(offsets, offsets + experts + 1, 0);
  for (std::int64_t index = 0; index < num_tokens * top_k; ++index) {
    const std::int32_t local = local_of(index);
    if (local >= 0) ++offsets[local + 1];
  }
  for (std::int64_t expert = 0; expert < experts; ++expert) offsets[expert + 1] += offsets[expert];
  const std::int64_t rows = offsets[experts];
  auto* row_token = workspace.take(DType::int32, {std::max<std::int64_t>(rows, 1)}).data_as<std::int32_t>();
  auto* row_weight = workspace.take(DType::fp32, {std::max<std::int64_t>(rows, 1)}).data_as<float>();
  std::copy(offsets, offsets + experts, cursor);
  for (std::int64_t index = 0; index < num_tokens * top_k; ++index) {
    const std::int32_t local = local_of(index);
    if (local < 0) continue;
    const std::int64_t row = cursor[local]++;
    row_token[row] = static_cast<std::int32_t>(index / top_k);
    row_weight[row] = routing[index];
  }

  // 2. Gather the routed rows as fp32 into packed tiles (the GEMM1 A operand): tile t, depth k, row r at
  //    [(t * H + k) * R + r]. Rows past an expert's count are never read.
  const int tile_rows = kernel_.max_rows;
  auto* tile_offsets = workspace.take(DType::int64, {experts + 1}).data_as<std::int64_t>();
  tile_offsets[0] = 0;
  for (std::int64_t expert = 0; expert < experts; ++expert) {
    tile_offsets[expert + 1] =
        tile_offsets[expert] + (offsets[expert + 1] - offsets[expert] + tile_rows - 1) / tile_rows;
  }
  const std::int64_t tiles = tile_offsets[experts];
  const PanelLayout layout = packed->layout;
  FUSEDMOE_ASSERT(layout == kernel_.layout, "weights packed for another kernel layout");
  const std::int64_t depth13 = packed->hidden_depth;
  const std::int64_t input_tile = tile_elements(layout, depth13, tile_rows);
  auto* inputs =
      workspace.take(DType::int32, {std::max<std::int64_t>(tiles, 1) * input_tile}).data_as<std::uint32_t>();
  const TensorView source = dispatched.hidden;
  FUSEDMOE_ASSERT(layout == PanelLayout::widen || source.dtype() == DType::bf16,
                  "bf16 pairs need bf16 activations");
  parallel_for_dynamic(experts, num_threads, [&](std::int64_t expert) {
    for (std::int64_t tile = tile_offsets[expert]; tile < tile_offsets[expert + 1]; ++tile) {
      const std::int64_t row0 = offsets[expert] + (tile - tile_offsets[expert]) * tile_rows;
      const int count = static_cast<int>(std::min<std::int64_t>(tile_rows, offsets[expert + 1] - row0));
      std::uint32_t* packed_tile = inputs + tile * input_tile;
      for (int r = 0; r < count; ++r) {
        const std::int64_t base = static_cast<std::int64_t>(row_token[row0 + r]) * hidden;
        if (layout == PanelLayout::pairs) {  // bf16 row reinterpreted as (k, k + 1) pairs
          const auto* bits = source.data_as<const std::uint16_t>() + base;
          for (std::int64_t pair = 0; pair < depth13 / 2; ++pair) {
            const std::uint32_t low = bits[2 * pair];
            const std::uint32_t high = 2 * pair + 1 < hidden ? bits[2 * pair + 1] : 0;
            packed_tile[pair * tile_rows + r] = low | (high << 16);
          }
        } else if (source.dtype() == DType::fp32) {
          const float* x = source.data_as<const float>() + base;
          auto* out = reinterpret_cast<float*>(packed_tile);
          for (std::int64_t k = 0; k < hidden; ++k) out[k * tile_rows + r] = x[k];
        } else {
          const auto* bits = source.data_as<const std::uint16_t>() + base;
          auto* out = reinterpret_cast<float*>(packed_tile);
          for (std::int64_t k = 0; k < hidden; ++k) out[k * tile_rows + r] = bf16_to_float(bits[k]);
        }
      }
    }
  });

  // 3. GEMM1 + activation: tasks (expert, 16-column block); the intermediate is written once, in fp32,
  //    already packed as GEMM2's A tiles.
  const std::int64_t intermediate_tile = tile_elements(layout, intermediate_padded, tile_rows);
  auto* intermediate = workspace.take(DType::int32, {std::max<std::int64_t>(tiles, 1) * intermediate_tile})
                           .data_as<std::uint32_t>();
  const std::int64_t blocks13 = intermediate_padded / 16;
  auto* tasks = workspace.take(DType::int64, {2 * experts * blocks13}).data_as<std::int64_t>();
  std::int64_t num_tasks = 0;
  for (std::int64_t expert = 0; expert < experts; ++expert) {
    if (offsets[expert + 1] == offsets[expert]) continue;
    for (std::int64_t block = 0; block < blocks13; ++block) {
      tasks[2 * num_tasks] = expert;
      tasks[2 * num_tasks + 1] = block;
      ++num_tasks;
    }
  }
  const bool use_silu = config_.activation == Activation::silu;
  // Decode-shaped batches (every expert's rows fit one tile): every task streams one panel, so the tasks cost
  // the same and contiguous ranges per thread balance as well as the dynamic schedule, while each thread then
  // streams one contiguous run of panels (its software prefetch running into its own next panel) instead of
  // every other one. Measured on the 2-core Xeon: decode at 0.94 of the read probe against 0.90 (medians of
  // 10 alternating processes), up to 40 GB/s where the dynamic schedule never passed 38
  // (bench/results/2026-11-27-cpu-static-schedule-ab.txt). The sums run in the same order either way.
  std::int64_t active_experts = 0;
  for (std::int64_t expert = 0; expert < experts; ++expert) {
    if (offsets[expert + 1] > offsets[expert]) ++active_experts;
  }
  const bool one_tile_each = tiles == active_experts;
  auto gemm1_task = [&](std::int64_t task) {
    const std::int64_t expert = tasks[2 * task], block = tasks[2 * task + 1];
    const std::uint32_t* panel = packed->w13_panel(expert, block);
    alignas(64) float tile[kMaxTileRows * kPanelWidth];
    for (std::int64_t t = tile_offsets[expert]; t < tile_offsets[expert + 1]; ++t) {
      const std::int64_t row0 = offsets[expert] + (t - tile_offsets[expert]) * tile_rows;
      const int count = static_cast<int>(std::min<std::int64_t>(tile_rows, offsets[expert + 1] - row0));
      tile_product(kernel_, inputs + t * input_tile, count, panel, depth13, tile);
      kernel_.activation(tile, count,
                         intermediate + t * intermediate_tile + tile_elements(layout, block * 16, tile_rows),
                         use_silu);
    }
  };
  // The last 10% of the tasks go one at a time to whichever thread is free, so a thread the machine slows
  // down (steal time) doesn't hold the other at the join: against all-contiguous ranges, decode/probe rose in
  // mean in 11 of 12 cells x schedules tried (olmoe M=16 median 0.88 -> 0.94 in one series; mixtral M=1 the
  // exception; bench/results/2026-11-27-cpu-mostly-static-ab.txt). Either way every sum keeps its order.
  constexpr double kStaticShare = 0.9;
  if (one_tile_each) {
    parallel_for_mostly_static(num_tasks, num_threads, kStaticShare,
                               [&](std::int64_t begin, std::int64_t end) {
                                 for (std::int64_t task = begin; task < end; ++task) gemm1_task(task);
                               });
  } else {
    parallel_for_dynamic(num_tasks, num_threads, gemm1_task);
  }

  // 4. GEMM2: tasks own 32 output columns and accumulate weight * row over the experts in ascending order.
  float* sums = workspace.take(DType::fp32, {num_tokens * hidden_padded}).data_as<float>();
  const std::int64_t blocks2 = hidden_padded / kPanelWidth;
  const DType out_dtype = expert_out.dtype();
  // Column blocks [begin, end): experts outermost (each expert's panels of those blocks are contiguous), so
  // the sum of every output element still runs over the experts in ascending order.
  auto gemm2_blocks = [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t token = 0; token < num_tokens; ++token) {
      std::memset(sums + token * hidden_padded + begin * kPanelWidth, 0,
                  static_cast<std::size_t>((end - begin) * kPanelWidth) * sizeof(float));
    }
    alignas(64) float tile[kMaxTileRows * kPanelWidth];
    for (std::int64_t expert = 0; expert < experts; ++expert) {
      for (std::int64_t block = begin; block < end; ++block) {
        const std::int64_t column0 = block * kPanelWidth;
        const std::uint32_t* panel = packed->w2_panel(expert, block);
        for (std::int64_t t = tile_offsets[expert]; t < tile_offsets[expert + 1]; ++t) {
          const std::int64_t row0 = offsets[expert] + (t - tile_offsets[expert]) * tile_rows;
          const int count = static_cast<int>(std::min<std::int64_t>(tile_rows, offsets[expert + 1] - row0));
          tile_product(kernel_, intermediate + t * intermediate_tile, count, panel, intermediate_padded,
                       tile);
          float* destination[kMaxTileRows];
          for (int r = 0; r < count; ++r) {
            destination[r] = sums + static_cast<std::int64_t>(row_token[row0 + r]) * hidden_padded + column0;
          }
          kernel_.accumulate(tile, count, row_weight + row0, destination);
        }
      }
    }
    for (std::int64_t block = begin; block < end; ++block) {
      const std::int64_t column0 = block * kPanelWidth;
      const std::int64_t width = std::min<std::int64_t>(kPanelWidth, hidden - column0);
      for (std::int64_t token = 0; token < num_tokens; ++token) {
        const float* sum = sums + token * hidden_padded + column0;
        for (std::int64_t j = 0; j < width; ++j)
          store_element(expert_out.data(), out_dtype, token * hidden + column0 + j, sum[j]);
      }
    }
  };
  if (one_tile_each) {
    parallel_for_mostly_static(blocks2, num_threads, kStaticShare, gemm2_blocks);
  } else {
    parallel_for_dynamic(blocks2, num_threads, [&](std::int64_t block) { gemm2_blocks(block, block + 1); });
  }
}

}  // namespace fusedmoe::prepacked
