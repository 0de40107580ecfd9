#include "core/check.hpp"
#include "fusedmoe/kernel.hpp"

namespace fusedmoe {

namespace {
constexpr std::size_t kWorkspaceAlignment = 256;  // enough for any vector load and for CUDA's cp.async/TMA
std::size_t round_up(std::size_t value) {
  return (value + kWorkspaceAlignment - 1) / kWorkspaceAlignment * kWorkspaceAlignment;
}
}  // namespace

std::size_t WorkspaceArena::bytes_for(DType dtype, std::int64_t count) {
  return round_up(static_cast<std::size_t>(count) * dtype_size(dtype));
}

TensorView WorkspaceArena::take(DType dtype, std::span<const std::int64_t> shape) {
  const TensorView probe(nullptr, dtype, shape, device_);
  const std::size_t bytes = bytes_for(dtype, probe.numel());
  FUSEDMOE_ASSERT(used_ + bytes <= bytes_, "workspace too small: need ", used_ + bytes, " bytes, have ",
                  bytes_, " (a workspace_bytes() query under-reported)");
  void* pointer = static_cast<char*>(base_) + used_;
  used_ += bytes;
  return TensorView(pointer, dtype, shape, device_);
}

}  // namespace fusedmoe
