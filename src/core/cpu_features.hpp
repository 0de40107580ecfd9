// CPU feature detection: cpuid plus the OS's XCR0 register-state check, grouped into levels.
#pragma once

#include "fusedmoe/platform.hpp"

namespace fusedmoe {

// What the hardware and OS support, before any cap.
CpuInfo detect_cpu_uncapped();
// detect_cpu_uncapped() capped by FUSEDMOE_MAX_CPU_ISA (read on every call, so tests can set it).
CpuInfo detect_cpu();

}  // namespace fusedmoe
