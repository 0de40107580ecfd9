// Host side of the wgmma grouped GEMMs: each wgmma tile of the table instantiated once, shared memory opted
// into per device. One-tile-per-block grids are sized for the worst-case block count (unused blocks exit at
// once); the warp-specialised tiles launch one block per SM (at most one per tile), which take tiles from a
// counter. The kernels have bodies only in the sm_90a code of the binary; the caller offers their tiles only
// where that code runs (wgmma_tiles_available).
#include <algorithm>
#include <climits>
#include <type_traits>

#include "backends/cuda_common/cuda_check.hpp"
#include "backends/cuda_common/tensor_map.hpp"
#include "backends/cuda_fused/kernels/gemm_launch_params.cuh"
#include "backends/cuda_fused/kernels/launch.hpp"
#include "backends/cuda_fused/kernels/sm90_wgmma_warp_specialized.cuh"
#include "core/check.hpp"

namespace fusedmoe::cuda_fused {

namespace {

using Wg64N128 = WgmmaShape<1, 128, 4>;
using Wg64N256 = WgmmaShape<1, 256, 4>;
using Wg128N128 = WgmmaShape<2, 128, 3>;
using Wg128N256 = WgmmaShape<2, 256, 4>;

template <class Shape>
constexpr bool matches(TileId id, bool warp_specialized = false) {
  const TileConfig& config = kTileConfigs[static_cast<int>(id)];
  return config.id == id && config.wgmma && config.warp_specialized == warp_specialized &&
         config.block_m == Shape::kBlockM && config.block_n == Shape::kBlockN &&
         config.block_k == Shape::kBlockK && config.warps_m == Shape::kThreads / 32 &&
         config.stages == Shape::kStages && config.cluster_m == Shape::kClusterM &&
         config.shared_memory_bytes == static_cast<std::size_t>(Shape::kSharedBytes);
}
static_assert(matches<Wg64N128>(TileId::wg64_n128) && matches<Wg64N256>(TileId::wg64_n256) &&
                  matches<Wg128N128>(TileId::wg128_n128) && matches<Wg128N256>(TileId::wg128_n256),
              "tile_table.hpp's table and the instantiated wgmma shapes must agree");
using Ws64N256 = WarpSpecializedShape<1, 5>;
using Ws128N256 = WarpSpecializedShape<2, 4>;
using Ws64N128 = WarpSpecializedShape<1, 8, 128>;
using Ws128N256Pair = WarpSpecializedShape<2, 4, 256, 2>;
// Three consumers on 192 x 192: four stages leave room for 8 staged epilogue rows per warp (three stages with
// 16 were 0.3-20% slower, bench/results/2026-11-28-h200-session21.md).
using Ws192N192 = WarpSpecializedShape<3, 4, 192, 1, 8>;

static_assert(matches<Ws64N256>(TileId::wg64_n256_ws, true) &&
                  matches<Ws128N256>(TileId::wg128_n256_ws, true) &&
                  matches<Ws64N128>(TileId::wg64_n128_ws, true) &&
                  matches<Ws128N256Pair>(TileId::wg128_n256_ws_pair, true) &&
                  matches<Ws192N192>(TileId::wg192_n192_ws, true),
              "tile_table.hpp's table and the instantiated warp-specialised shapes must agree");
static_assert(
    staging_layout_ok<Ws64N256>() && staging_layout_ok<Ws128N256>() && staging_layout_ok<Ws64N128>() &&
        staging_layout_ok<Ws128N256Pair>() && staging_layout_ok<Ws192N192>(),
    "a warp-specialised shape's epilogue staging breaks the TMA swizzle, its alignment or its banks");

// Calls f(std::type_identity<Shape>) with the one-tile-per-block shape of `id`.
template <class F>
decltype(auto) with_one_tile_shape(TileId id, F&& f) {
  switch (id) {
    case TileId::wg64_n128:
      return f(std::type_identity<Wg64N128>{});
    case TileId::wg64_n256:
      return f(std::type_identity<Wg64N256>{});
    case TileId::wg128_n128:
      return f(std::type_identity<Wg128N128>{});
    case TileId::wg128_n256:
      return f(std::type_identity<Wg128N256>{});
    default:
      throw InternalError("[cuda_fused] a warp-specialised or mma.sync tile has no one-tile wgmma shape");
  }
}

template <class Shape>
dim3 gemm2_grid(const Gemm2Launch& args) {
  return gemm_grid(args.max_blocks, (args.hidden + Shape::kBlockN - 1) / Shape::kBlockN);
}

// Every caller checks wgmma_tiles_available first; this is the last line of defence, because on any other
// device the kernels' bodies are compiled out.
void check_runnable() {
#if !FUSEDMOE_CUDA_FUSED_SM90A
  throw Unsupported(
      "[cuda_fused] the wgmma tiles need sm_90a code: rebuild with 90a in CMAKE_CUDA_ARCHITECTURES");
#else
  int device = 0;
  FUSEDMOE_CUDA_CHECK(cudaGetDevice(&device));
  const cuda::DeviceAttributes& attributes = cuda::device_attributes(device);
  FUSEDMOE_CHECK(
      wgmma_tiles_available(attributes.compute_capability, attributes.shared_memory_per_block_optin),
      "[cuda_fused] the wgmma tiles run on compute capability 9.0 only; ", attributes.name, " is sm_",
      attributes.compute_capability);
#endif
}

template <class Shape>
void run_gemm1(const Gemm1Launch& args, cudaStream_t stream) {
  Gemm1Params params = gemm1_params(args, Shape::kBlockK);
  params.trigger_dependents_early = wgmma_gemm1_triggers_early(args);
  const std::int64_t w13_rows = 2 * args.intermediate_padded;
  const auto kernel = wgmma_gemm1_gate_up_kernel<Shape>;
  cuda::allow_dynamic_shared_memory(reinterpret_cast<const void*>(kernel), Shape::kSharedBytes);
  cuda::launch_dependent(kernel, gemm_grid(args.max_blocks, (w13_rows + Shape::kBlockN - 1) / Shape::kBlockN),
                         Shape::kThreads, Shape::kSharedBytes, stream, args.dependent_launch, params,
                         w13_rows);
}

template <class Shape>
void run_gemm2(const Gemm2Launch& args, cudaStream_t stream) {
  const dim3 grid = gemm2_grid<Shape>(args);
  const Gemm2Params params = gemm2_params(args, Shape::kBlockK);
  const auto kernel = wgmma_gemm2_down_kernel<Shape>;
  cuda::allow_dynamic_shared_memory(reinterpret_cast<const void*>(kernel), Shape::kSharedBytes);
  cuda::launch_dependent(kernel, grid, Shape::kThreads, Shape::kSharedBytes, stream, args.dependent_launch,
                         params, args.hidden_padded);
}

// The weights' TMA map: E_local matrices [rows, depth] in k-panels, in boxes of kBoxRows rows (the tile's
// kBlockN, or half of it for a pair) x one panel.
// Boxes past an expert's (padded) rows read as zeros (the last column block may overhang), never the next
// panel's or expert's rows.
template <class Shape>
CUtensorMap weight_map(const void* weights, std::int64_t rows, std::int64_t depth, std::int64_t experts) {
  static_assert(Shape::kBlockK == kPanelDepth, "a stage's box is one k-panel");
  return cuda::bf16_panels_tensor_map(weights, rows, depth, experts, Shape::kBoxRows);
}

// Warp-specialised tiles: one block per SM (at most one per tile), each walking the tiles. `extra`: the
// kernel's arguments after the hand-over (GEMM1: the intermediate's TMA map). Returns false (launching
// nothing) for a pair tile when no cluster of it fits the device.
template <class Shape, class Params, class... KernelExtra, class... Extra>
bool run_warp_specialized(void (*kernel)(Params, CUtensorMap, unsigned long long*, const std::int64_t*,
                                         std::int64_t, std::int64_t, RowBlockSync, KernelExtra...),
                          const Params& params, const CUtensorMap& weights, std::uint64_t* next_tile,
                          const std::int64_t* used_rows, std::int64_t row_blocks, std::int64_t column_blocks,
                          RowBlockSync sync, bool dependent, cudaStream_t stream, const Extra&... extra) {
  FUSEDMOE_CHECK(next_tile != nullptr,
                 "[cuda_fused] the warp-specialised tiles need tile_counters (tile_counter_words)");
  FUSEDMOE_CHECK(row_blocks >= 1 && column_blocks >= 1,
                 "[cuda_fused] a warp-specialised GEMM needs at least ", "one tile; got ", row_blocks,
                 " row blocks x ", column_blocks, " column blocks");
  const auto* function = reinterpret_cast<const void*>(kernel);
  cuda::allow_dynamic_shared_memory(function, Shape::kSharedBytes);
  // One block per SM at most (fewer when there are fewer tiles): the blocks (pairs) take the tiles one by
  // one.
  const std::int64_t resident =
      Shape::kPair ? cuda::resident_clusters(function, Shape::kThreads, Shape::kSharedBytes, Shape::kClusterM)
                   : cuda::resident_blocks(function, Shape::kThreads, Shape::kSharedBytes);
  if (resident == 0) return false;
  const std::int64_t tiles = (row_blocks + Shape::kClusterM - 1) / Shape::kClusterM * column_blocks;
  const std::int64_t clusters = std::min(tiles, resident);
  Params launched = params;
  // The expert groups' size for this GEMM's depth and width, unless the launch named one (group_rows > 0).
  if (launched.raster.block_runs != nullptr && launched.raster.group_rows <= 0) {
    launched.raster.group_rows =
        raster_group_rows(Shape::kBlockM, std::int64_t{params.k_tiles} * Shape::kBlockK * 2, column_blocks,
                          static_cast<int>(resident * Shape::kClusterM), Shape::kClusterM);
  }
  cuda::launch_dependent_clusters(
      kernel, dim3(static_cast<unsigned>(clusters * Shape::kClusterM)), Shape::kThreads, Shape::kSharedBytes,
      stream, dependent, static_cast<unsigned>(Shape::kClusterM), launched, weights,
      reinterpret_cast<unsigned long long*>(next_tile), used_rows, row_blocks, column_blocks, sync, extra...);
  return true;
}

// A pair tile falls back to its single-CTA shape (the same bits) where no cluster of it fits; GEMM1 and GEMM2
// need the same resources, so both fall back together and the hand-over's counts still agree.
template <class Shape>
void run_ws_gemm1(const Gemm1Launch& args, cudaStream_t stream) {
  const std::int64_t w13_rows = 2 * args.intermediate_padded;
  // The intermediate [max_blocks x block_m sorted rows, I_pad], stored by each consumer warp's staged rows.
  const CUtensorMap intermediate_map = cuda::bf16_rows_tensor_map(
      args.intermediate, args.max_blocks * Shape::kBlockM, args.intermediate_padded, args.intermediate_padded,
      Shape::kStagingRows, Shape::kEpilogueBoxColumns);
  const bool launched = run_warp_specialized<Shape>(
      wgmma_gemm1_warp_specialized_kernel<Shape>, gemm1_params(args, Shape::kBlockK),
      weight_map<Shape>(args.w13, w13_rows, args.weight_depth, args.num_local_experts), args.tile_counters,
      args.used_rows, args.max_blocks, (w13_rows + Shape::kBlockN - 1) / Shape::kBlockN,
      RowBlockSync{.done = args.row_done, .target = 0}, args.dependent_launch, stream, intermediate_map);
  if constexpr (Shape::kPair) {
    if (!launched) return run_ws_gemm1<typename Shape::Single>(args, stream);
  }
  FUSEDMOE_CHECK(launched, "[cuda_fused] no block of the warp-specialised GEMM1 fits the device");
}

template <class Shape>
void run_ws_gemm2(const Gemm2Launch& args, cudaStream_t stream) {
  // Every consumer warp of each of GEMM1's column blocks counts once per row block (GEMM1's tile has GEMM2's
  // rows and consumers; its columns may differ: Gemm2Launch::gemm1_tile).
  const int gemm1_block_n = args.gemm1_tile != nullptr ? args.gemm1_tile->block_n : Shape::kBlockN;
  FUSEDMOE_CHECK(args.gemm1_tile == nullptr ||
                     (args.gemm1_tile->block_m == Shape::kBlockM && args.gemm1_tile->warp_specialized),
                 "[cuda_fused] GEMM2's warp-specialised tile needs GEMM1's to be one with the same rows");
  const std::int64_t gemm1_columns = (2 * args.intermediate_padded + gemm1_block_n - 1) / gemm1_block_n;
  const RowBlockSync sync{.done = args.row_done,
                          .target = static_cast<unsigned>(gemm1_columns * 4 * Shape::kConsumers)};
  // Sorted rows: the output [max_blocks x block_m sorted rows, H], stored by each consumer warp's staged
  // rows.
  const CUtensorMap sorted_map =
      args.sorted_rows
          ? cuda::bf16_rows_tensor_map(args.out_rows, args.max_blocks * Shape::kBlockM, args.hidden,
                                       args.pitch, Shape::kStagingRows, Shape::kEpilogueBoxColumns)
          : CUtensorMap{};
  // The A rows: the intermediate [max_blocks x block_m sorted rows, I_pad], a tile's rows x 64 columns a box.
  const CUtensorMap a_map =
      args.tma_rows
          ? cuda::bf16_rows_tensor_map(args.intermediate, args.max_blocks * Shape::kBlockM,
                                       args.intermediate_padded, args.intermediate_padded, Shape::kBlockM)
          : CUtensorMap{};
  const bool launched = run_warp_specialized<Shape>(
      wgmma_gemm2_warp_specialized_kernel<Shape>, gemm2_params(args, Shape::kBlockK),
      weight_map<Shape>(args.w2, args.hidden_padded, args.intermediate_padded, args.num_local_experts),
      args.tile_counters == nullptr ? nullptr : args.tile_counters + 1, args.used_rows, args.max_blocks,
      (args.hidden + Shape::kBlockN - 1) / Shape::kBlockN, sync, args.dependent_launch, stream, sorted_map,
      args.sorted_rows, a_map, args.tma_rows);
  if constexpr (Shape::kPair) {
    if (!launched) return run_ws_gemm2<typename Shape::Single>(args, stream);
  }
  FUSEDMOE_CHECK(launched, "[cuda_fused] no block of the warp-specialised GEMM2 fits the device");
}

}  // namespace

void launch_zero_tile_counters(std::uint64_t* tile_counters, std::int64_t row_blocks, StreamHandle stream) {
  FUSEDMOE_CUDA_CHECK(cudaMemsetAsync(tile_counters, 0,
                                      tile_counter_words(row_blocks) * sizeof(std::uint64_t),
                                      static_cast<cudaStream_t>(stream)));
}

void launch_wgmma_gemm1(const Gemm1Launch& args, StreamHandle stream_handle) {
  check_runnable();
  const auto stream = static_cast<cudaStream_t>(stream_handle);
  if (!args.tile->warp_specialized) {
    return with_one_tile_shape(
        args.tile->id, [&]<class Shape>(std::type_identity<Shape>) { run_gemm1<Shape>(args, stream); });
  }
  switch (args.tile->id) {
    case TileId::wg64_n256_ws:
      return run_ws_gemm1<Ws64N256>(args, stream);
    case TileId::wg128_n256_ws:
      return run_ws_gemm1<Ws128N256>(args, stream);
    case TileId::wg64_n128_ws:
      return run_ws_gemm1<Ws64N128>(args, stream);
    case TileId::wg128_n256_ws_pair:
      return run_ws_gemm1<Ws128N256Pair>(args, stream);
    case TileId::wg192_n192_ws:
      return run_ws_gemm1<Ws192N192>(args, stream);
    default:
      throw InternalError("[cuda_fused] an mma.sync tile reached the wgmma launcher");
  }
}

// One-tile GEMM1s trigger only where GEMM2's grid fills a wave (H200: mixtral-8x7b M=64/256 0.5%/0.4%
// faster, deepseek-v3 level; grid_dependency.cuh says why a smaller GEMM2 must not start early). The
// warp-specialised tiles hand rows over to GEMM2 themselves.
bool wgmma_gemm1_triggers_early(const Gemm1Launch& args) {
  return !args.tile->warp_specialized && args.dependent_launch && args.successor_fills_a_wave;
}

bool wgmma_gemm2_fills_a_wave(const Gemm2Launch& args) {
  if (args.tile->warp_specialized) return false;  // persistent grids: one block per SM at most
  return with_one_tile_shape(args.tile->id, [&]<class Shape>(std::type_identity<Shape>) {
    const auto* function = reinterpret_cast<const void*>(wgmma_gemm2_down_kernel<Shape>);
    cuda::allow_dynamic_shared_memory(function, Shape::kSharedBytes);
    const dim3 grid = gemm2_grid<Shape>(args);
    return cuda::grid_fills_a_wave(function, static_cast<std::int64_t>(grid.x) * grid.y, Shape::kThreads,
                                   Shape::kSharedBytes);
  });
}

void launch_wgmma_gemm2(const Gemm2Launch& args, StreamHandle stream_handle) {
  check_runnable();
  // The epilogue stores 8 columns (16 bytes) at a time.
  FUSEDMOE_CHECK(args.pitch % 8 == 0 && reinterpret_cast<std::uintptr_t>(args.out_rows) % 16 == 0,
                 "[cuda_fused] the wgmma GEMM2 writes 16-byte groups: its output rows need a 16-byte-aligned "
                 "base and a pitch that is a multiple of 8 (got ",
                 args.pitch, ")");
  const auto stream = static_cast<cudaStream_t>(stream_handle);
  if (!args.tile->warp_specialized) {
    return with_one_tile_shape(
        args.tile->id, [&]<class Shape>(std::type_identity<Shape>) { run_gemm2<Shape>(args, stream); });
  }
  switch (args.tile->id) {
    case TileId::wg64_n256_ws:
      return run_ws_gemm2<Ws64N256>(args, stream);
    case TileId::wg128_n256_ws:
      return run_ws_gemm2<Ws128N256>(args, stream);
    case TileId::wg64_n128_ws:
      return run_ws_gemm2<Ws64N128>(args, stream);
    case TileId::wg128_n256_ws_pair:
      return run_ws_gemm2<Ws128N256Pair>(args, stream);
    case TileId::wg192_n192_ws:
      return run_ws_gemm2<Ws192N192>(args, stream);
    default:
      throw InternalError("[cuda_fused] an mma.sync tile reached the wgmma launcher");
  }
}

}  // namespace fusedmoe::cuda_fused
