// Helpers shared by the AVX-512 translation units (include only from files built with AVX-512 flags).
#pragma once

#include <immintrin.h>

namespace fusedmoe::prepacked {

// act(gate) * up for one row of a GEMM1 output tile: gate = tile_row[0..16), up = tile_row[16..32).
__m512 activate_row(const float* tile_row, bool silu);

}  // namespace fusedmoe::prepacked
