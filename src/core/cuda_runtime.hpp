// The seam between core and the CUDA runtime glue (src/backends/cuda_common): core holds function
// pointers, a CUDA build fills them in. No CUDA headers here, so core compiles the same either way.
#pragma once

#include "fusedmoe/platform.hpp"

namespace fusedmoe {

// What Platform::detect asks about a CUDA device. Must not throw: an unusable device is
// `available = false` with a reason.
using CudaProbe = CudaInfo (*)(int device_index);
void set_cuda_probe(CudaProbe probe);

#if FUSEDMOE_WITH_CUDA
// Installs the CUDA memory hooks (core/allocator.hpp) and the probe. Explicit, idempotent and thread-safe;
// core calls it before it first needs either (so no static initialiser is involved), and so does the
// backend registry. Defined in src/backends/cuda_common/runtime.cpp.
void install_cuda_runtime();
#endif

}  // namespace fusedmoe
