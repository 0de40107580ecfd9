// The AVX-512 panel kernel (defined in a translation unit built with AVX-512 flags).
#pragma once

#include "backends/cpu_prepacked/microkernel.hpp"

namespace fusedmoe::prepacked {
PanelKernelInfo avx512_panel_kernel();
}  // namespace fusedmoe::prepacked
