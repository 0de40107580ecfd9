// Which of cuda_fused's tiles the test GPU runs (cuda_fused and cuda_batched share the tile table).
#pragma once

#include "backends/cuda_fused/kernels/tile_table.hpp"
#include "cuda/cuda_testing.hpp"
#include "fusedmoe/platform.hpp"

namespace fusedmoe::testing {

// Whether this build and the test GPU run the wgmma tiles (sm_90a code on compute capability 9.0).
inline bool wgmma_available() {
  const Platform platform = Platform::detect(kGpu);
  return platform.cuda.available && cuda_fused::wgmma_tiles_available(platform.cuda.compute_capability,
                                                                      platform.cuda.shared_memory_per_block);
}

// Whether `tile` runs on the test GPU (wgmma tiles need sm_90a; large_shared ones its opt-in shared memory).
inline bool tile_available_here(const cuda_fused::TileConfig& tile) {
  const Platform platform = Platform::detect(kGpu);
  return platform.cuda.available && cuda_fused::tile_available(tile, platform.cuda.compute_capability,
                                                               platform.cuda.shared_memory_per_block);
}

}  // namespace fusedmoe::testing
