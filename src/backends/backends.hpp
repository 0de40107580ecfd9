// The built-in backends' registry entries (listed in priority order in src/oracle/registry.cpp).
#pragma once

#include "fusedmoe/oracle.hpp"

namespace fusedmoe {

BackendInfo cpu_reference_backend();
BackendInfo cpu_reference_batched_backend();
BackendInfo cpu_reference_monolithic_backend();

}  // namespace fusedmoe
