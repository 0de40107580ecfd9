// Host side of the grouped GEMMs: the tile table's entries instantiated once each, shared memory opted
// into per device, grids sized for the worst-case block count (unused blocks exit at once).
#include "backends/cuda_common/cuda_check.hpp"
#include "backends/cuda_fused/kernels/gemm_launch_params.cuh"
#include "backends/cuda_fused/kernels/launch.hpp"
#include "backends/cuda_fused/kernels/sm80_bf16_grouped_gemm.cuh"
#include "core/check.hpp"

#include <type_traits>

namespace fusedmoe::cuda_fused {

namespace {

using ShapeM16 = GemmShape<16, 64, 64, 1, 2, 4>;
using ShapeM32 = GemmShape<32, 64, 64, 2, 2, 3>;
using ShapeM64 = GemmShape<64, 128, 32, 2, 2, 4>;
using ShapeM128 = GemmShape<128, 128, 32, 4, 2, 4>;
using ShapeM16N32S8 = GemmShape<16, 32, 64, 1, 1, 8>;
using ShapeM16N64S8 = GemmShape<16, 64, 64, 1, 2, 8>;
using ShapeM16N64K128 = GemmShape<16, 64, 128, 1, 2, 5>;
using ShapeM16N128K128 = GemmShape<16, 128, 128, 1, 4, 3>;

template <class Shape>
constexpr bool matches(const TileConfig& config) {
  return config.block_m == Shape::kBlockM && config.block_n == Shape::kBlockN &&
         config.block_k == Shape::kBlockK && config.warps_m == Shape::kWarpsM &&
         config.warps_n == Shape::kWarpsN && config.stages == Shape::kStages &&
         config.shared_memory_bytes == static_cast<std::size_t>(Shape::kSharedBytes);
}
static_assert(matches<ShapeM16>(kTileConfigs[0]) && matches<ShapeM32>(kTileConfigs[1]) &&
                  matches<ShapeM64>(kTileConfigs[2]) && matches<ShapeM128>(kTileConfigs[3]) &&
                  matches<ShapeM16N32S8>(kTileConfigs[4]) && matches<ShapeM16N64S8>(kTileConfigs[5]) &&
                  matches<ShapeM16N64K128>(kTileConfigs[6]) && matches<ShapeM16N128K128>(kTileConfigs[7]),
              "tile_table.hpp's table and the instantiated shapes must agree");

// Calls f(std::type_identity<Shape>{}) with the instantiated shape of an mma.sync tile.
template <class F>
decltype(auto) with_shape(TileId id, F&& f) {
  switch (id) {
    case TileId::m16:
      return f(std::type_identity<ShapeM16>{});
    case TileId::m32:
      return f(std::type_identity<ShapeM32>{});
    case TileId::m64:
      return f(std::type_identity<ShapeM64>{});
    case TileId::m128:
      return f(std::type_identity<ShapeM128>{});
    case TileId::m16_n32_s8:
      return f(std::type_identity<ShapeM16N32S8>{});
    case TileId::m16_n64_s8:
      return f(std::type_identity<ShapeM16N64S8>{});
    case TileId::m16_n64_k128:
      return f(std::type_identity<ShapeM16N64K128>{});
    case TileId::m16_n128_k128:
      return f(std::type_identity<ShapeM16N128K128>{});
    default:
      throw InternalError("[cuda_fused] a wgmma tile reached the mma.sync launcher");
  }
}

// Whether a grid of `kernel` is resident at once (one wave); opts the kernel into its shared memory first.
template <class Shape, class Params>
bool fits_one_wave(void (*kernel)(Params), dim3 grid) {
  const auto* function = reinterpret_cast<const void*>(kernel);
  cuda::allow_dynamic_shared_memory(function, Shape::kSharedBytes);
  return cuda::grid_fits_one_wave(function, static_cast<std::int64_t>(grid.x) * grid.y, Shape::kThreads,
                                  Shape::kSharedBytes);
}

// Launches one GEMM; `trigger_early`: it lets its successor launch once every block has passed its wait
// (cuda_common/kernels/grid_dependency.cuh says when).
template <class Shape, class Params>
void launch_gemm(void (*kernel)(Params), dim3 grid, Params params, bool dependent_launch, bool trigger_early,
                 cudaStream_t stream) {
  cuda::allow_dynamic_shared_memory(reinterpret_cast<const void*>(kernel), Shape::kSharedBytes);
  params.trigger_dependents_early = dependent_launch && trigger_early;
  cuda::launch_dependent(kernel, grid, Shape::kThreads, Shape::kSharedBytes, stream, dependent_launch,
                         params);
}

template <class Shape>
dim3 gemm1_grid(const Gemm1Launch& args) {
  return gemm_grid(args.max_blocks, 2 * args.intermediate_padded / Shape::kBlockN);
}

template <class Shape>
dim3 gemm2_grid(const Gemm2Launch& args) {
  return gemm_grid(args.max_blocks, (args.hidden + Shape::kBlockN - 1) / Shape::kBlockN);
}

// GEMM1 lets GEMM2 in early when its own grid is one wave, or when GEMM2's fills one (the caller's
// Gemm1Launch::successor_fills_a_wave).
template <class Shape>
bool gemm1_triggers_early_on(const Gemm1Launch& args) {
  return args.dependent_launch &&
         (args.successor_fills_a_wave ||
          fits_one_wave<Shape>(gemm1_gate_up_kernel<Shape>, gemm1_grid<Shape>(args)));
}

template <class Shape>
void run_gemm1(const Gemm1Launch& args, cudaStream_t stream) {
  launch_gemm<Shape>(gemm1_gate_up_kernel<Shape>, gemm1_grid<Shape>(args), gemm1_params(args, Shape::kBlockK),
                     args.dependent_launch, gemm1_triggers_early_on<Shape>(args), stream);
}

// GEMM2 lets the reduce in early only when its own grid is one wave.
template <class Shape>
void run_gemm2(const Gemm2Launch& args, cudaStream_t stream) {
  const dim3 grid = gemm2_grid<Shape>(args);
  launch_gemm<Shape>(gemm2_down_kernel<Shape>, grid, gemm2_params(args, Shape::kBlockK),
                     args.dependent_launch, fits_one_wave<Shape>(gemm2_down_kernel<Shape>, grid), stream);
}

}  // namespace

void launch_gemm1(const Gemm1Launch& args, StreamHandle stream_handle) {
  if (args.tile->wgmma) return launch_wgmma_gemm1(args, stream_handle);
  const auto stream = static_cast<cudaStream_t>(stream_handle);
  with_shape(args.tile->id, [&]<class Shape>(std::type_identity<Shape>) { run_gemm1<Shape>(args, stream); });
}

void launch_gemm2(const Gemm2Launch& args, StreamHandle stream_handle) {
  FUSEDMOE_CHECK(!args.sorted_rows || args.tile->warp_specialized,
                 "[cuda_fused] GEMM2's rows in sorted order ", "need a warp-specialised tile, not ",
                 args.tile->name);
  if (args.tile->wgmma) return launch_wgmma_gemm2(args, stream_handle);
  const auto stream = static_cast<cudaStream_t>(stream_handle);
  with_shape(args.tile->id, [&]<class Shape>(std::type_identity<Shape>) { run_gemm2<Shape>(args, stream); });
}

bool gemm1_triggers_early(const Gemm1Launch& args) {
  if (args.tile->wgmma) return wgmma_gemm1_triggers_early(args);
  return with_shape(args.tile->id, [&]<class Shape>(std::type_identity<Shape>) {
    return gemm1_triggers_early_on<Shape>(args);
  });
}

bool gemm2_fills_a_wave(const Gemm2Launch& args) {
  if (args.tile->wgmma) return wgmma_gemm2_fills_a_wave(args);
  return with_shape(args.tile->id, [&]<class Shape>(std::type_identity<Shape>) {
    const auto* function = reinterpret_cast<const void*>(gemm2_down_kernel<Shape>);
    cuda::allow_dynamic_shared_memory(function, Shape::kSharedBytes);
    const dim3 grid = gemm2_grid<Shape>(args);
    return cuda::grid_fills_a_wave(function, static_cast<std::int64_t>(grid.x) * grid.y, Shape::kThreads,
                                   Shape::kSharedBytes);
  });
}

}  // namespace fusedmoe::cuda_fused
