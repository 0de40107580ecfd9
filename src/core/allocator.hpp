// Raw device memory: 64-byte aligned host memory on the CPU; CUDA builds register cudaMalloc/cudaFree.
#pragma once

#include <cstddef>
#include <memory>

#include "fusedmoe/device.hpp"

namespace fusedmoe {

inline constexpr std::size_t kCpuAlignment = 64;

// Allocates `bytes` on `device` (never managed memory). Throws Unsupported for CUDA in a CPU-only build.
std::shared_ptr<void> allocate_device_memory(Device device, std::size_t bytes);

// Hooks a CUDA build installs at start-up (src/backends/cuda_*); CPU-only builds leave them empty.
struct DeviceMemoryHooks {
  void* (*allocate)(int device_index, std::size_t bytes) = nullptr;
  void (*release)(int device_index, void* pointer) = nullptr;
  void (*copy)(void* dst, Device dst_device, const void* src, Device src_device, std::size_t bytes,
               StreamHandle stream) = nullptr;
  void (*fill_zero)(void* dst, Device device, std::size_t bytes, StreamHandle stream) = nullptr;
};
void set_cuda_memory_hooks(const DeviceMemoryHooks& hooks);
const DeviceMemoryHooks& cuda_memory_hooks();

}  // namespace fusedmoe
