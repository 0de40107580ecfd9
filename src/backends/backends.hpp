// The built-in backends' registry entries (listed in priority order in src/oracle/registry.cpp).
#pragma once

#include "fusedmoe/oracle.hpp"

namespace fusedmoe {

BackendInfo cpu_avx512_bf16_backend();
BackendInfo cpu_avx2_backend();
BackendInfo cpu_onednn_grouped_backend();
BackendInfo cpu_reference_backend();
BackendInfo cpu_reference_batched_backend();
BackendInfo cpu_reference_monolithic_backend();
BackendInfo cuda_fused_backend();            // CUDA builds only
BackendInfo cuda_cutlass_grouped_backend();  // CUDA builds only (a stub without CUTLASS headers or sm_90a)
BackendInfo cuda_cublas_grouped_backend();   // CUDA builds only
BackendInfo cuda_batched_backend();          // CUDA builds only
BackendInfo cuda_monolithic_backend();       // CUDA builds only

}  // namespace fusedmoe
