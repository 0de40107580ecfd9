// CUDA error checks and small runtime helpers for the CUDA folders. Includes cuda_runtime.h, so only
// code under src/backends/cuda_*/ includes it; generic code goes through device_ops.hpp.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "fusedmoe/device.hpp"
#include "fusedmoe/error.hpp"

namespace fusedmoe::cuda {

// "cudaMalloc(&p, n) failed: cudaErrorMemoryAllocation (2): out of memory at file.cpp:12"
std::string cuda_error_message(cudaError_t code, const char* call, const char* file, int line);
[[noreturn]] void throw_cuda_error(cudaError_t code, const char* call, const char* file, int line);

inline cudaStream_t stream_of(const ExecContext& context) {
  return static_cast<cudaStream_t>(context.stream);
}

// Makes `device_index` current for a scope and restores the previous device (cheap when already current).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device_index);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
  bool switched_ = false;
};

// What kernels size themselves by, read off the device once (never typed in).
struct DeviceAttributes {
  int compute_capability = 0;  // 90 for sm_90
  int num_sms = 0;
  std::size_t shared_memory_per_block_optin = 0;  // most dynamic shared memory a block may opt into
  std::size_t l2_bytes = 0;
  std::string name;
};
// Cached per device; throws CudaError when the device cannot be queried.
const DeviceAttributes& device_attributes(int device_index);

// Waits for the stream (nullptr: the legacy default stream) of the current device.
void synchronize(cudaStream_t stream);

// Lets `kernel` launch with `bytes` of dynamic shared memory on the current device (beyond 48 KiB a
// kernel must opt in); the limit set per (kernel, device) only grows, so any size allowed once stays allowed.
void allow_dynamic_shared_memory(const void* kernel, int bytes);

// FUSEDMOE_CUDA_PDL: false when `off` (A/B runs), true when unset or `on`; throws InvalidArgument otherwise.
// Read by the Experts' constructors (so a bad value fails before any launch), passed down to the launchers.
bool dependent_launch_requested();
// Whether a grid of `blocks` blocks of `kernel` (with `threads` threads and `shared_bytes` of dynamic shared
// memory each) is resident all at once on the current device: one wave. Occupancy cached per kernel,
// device and launch shape.
bool grid_fits_one_wave(const void* kernel, std::int64_t blocks, int threads, int shared_bytes);
// Whether a grid of `blocks` blocks of `kernel` takes every block slot of the current device (a successor
// let in early would find no free SM until this grid's blocks finish).
bool grid_fills_a_wave(const void* kernel, std::int64_t blocks, int threads, int shared_bytes);
// How many blocks of `kernel` the current device holds at once (occupancy x SMs; at least 1).
std::int64_t resident_blocks(const void* kernel, int threads, int shared_bytes);
// Clusters of `cluster_x` blocks (along x) of the kernel that fit on the device at once (0: none fits, e.g.
// on a partition with too few SMs per GPC).
std::int64_t resident_clusters(const void* kernel, int threads, int shared_bytes, int cluster_x);
// Whether `kernel` may be launched to overlap its predecessor on the current device
// (kernels/grid_dependency.cuh): compute capability 9.0 or newer, and the kernel's code compiled for 9.0 or
// newer (code JIT-compiled from compute_80 PTX has no griddepcontrol.wait in it). Cached per kernel and
// device.
bool kernel_waits_for_prior_grids(const void* kernel);

}  // namespace fusedmoe::cuda

// Throws fusedmoe::CudaError naming the call, the numeric code, its name and string, and file:line.
#define FUSEDMOE_CUDA_CHECK(call)                                                           \
  do {                                                                                      \
    const cudaError_t fusedmoe_cuda_status_ = (call);                                       \
    if (fusedmoe_cuda_status_ != cudaSuccess) {                                             \
      ::fusedmoe::cuda::throw_cuda_error(fusedmoe_cuda_status_, #call, __FILE__, __LINE__); \
    }                                                                                       \
  } while (0)

// After a kernel launch: a bad configuration (grid, shared memory) is reported here, not later.
#define FUSEDMOE_CUDA_CHECK_LAUNCH() FUSEDMOE_CUDA_CHECK(cudaGetLastError())
