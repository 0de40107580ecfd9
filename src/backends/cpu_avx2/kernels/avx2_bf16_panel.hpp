// The AVX2 + FMA panel kernel (defined in a translation unit built with -mavx2 -mfma).
#pragma once

#include "backends/cpu_prepacked/microkernel.hpp"

namespace fusedmoe::prepacked {
PanelKernelInfo avx2_panel_kernel();
}  // namespace fusedmoe::prepacked
