// The AVX-512 panel kernel (defined in a translation unit built with AVX-512 flags).
#pragma once

#include "backends/cpu_prepacked/microkernel.hpp"

namespace fusedmoe::prepacked {
// fp32-FMA kernel over widened bf16 panels (AVX-512 F/BW/DQ/VL).
PanelKernelInfo avx512_panel_kernel();
// bf16 dot-product kernel over pair panels (needs AVX512_BF16).
PanelKernelInfo avx512_bf16_dot_kernel();
AccumulateEpilogue avx512_accumulate_epilogue();
}  // namespace fusedmoe::prepacked
