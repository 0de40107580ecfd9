#include "core/allocator.hpp"

#include <cstdlib>
#include <new>

#include "core/check.hpp"
#include "core/cuda_runtime.hpp"

namespace fusedmoe {

namespace {
DeviceMemoryHooks& hooks_storage() {
  static DeviceMemoryHooks hooks;
  return hooks;
}
}  // namespace

void set_cuda_memory_hooks(const DeviceMemoryHooks& hooks) {
  hooks_storage() = hooks;
}
const DeviceMemoryHooks& cuda_memory_hooks() {
#if FUSEDMOE_WITH_CUDA
  install_cuda_runtime();  // once; a no-op afterwards
#endif
  return hooks_storage();
}

std::shared_ptr<void> allocate_device_memory(Device device, std::size_t bytes) {
  if (device.is_cpu()) {
    const std::size_t rounded = (bytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
    void* pointer = std::aligned_alloc(kCpuAlignment, rounded == 0 ? kCpuAlignment : rounded);
    if (pointer == nullptr) {
      throw InvalidArgument(
          str_cat("[allocator] cannot allocate ", bytes, " bytes on the CPU: out of memory"));
    }
    return std::shared_ptr<void>(pointer, [](void* p) { std::free(p); });
  }
  const DeviceMemoryHooks& hooks = cuda_memory_hooks();
  if (hooks.allocate == nullptr) {
    throw Unsupported(str_cat("[allocator] cannot allocate on ", to_string(device),
                              ": fusedmoe was built without CUDA (FUSEDMOE_CUDA=OFF or no CUDA compiler)"));
  }
  const int index = device.index;
  void* pointer = hooks.allocate(index, bytes);
  auto release = hooks.release;
  return std::shared_ptr<void>(pointer, [index, release](void* p) { release(index, p); });
}

}  // namespace fusedmoe
