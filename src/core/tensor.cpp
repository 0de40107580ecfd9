#include "fusedmoe/tensor.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/allocator.hpp"
#include "core/check.hpp"

namespace fusedmoe {

namespace {
std::string shape_text(std::span<const std::int64_t> shape) {
  std::string text;
  for (std::int64_t dim : shape) append_joined(text, ", ", std::to_string(dim));
  return "[" + text + "]";
}

// The element count, checked: no size is negative, and the product of the sizes with zeros counted as ones
// fits in 64 bits with `element_bytes` per element. The latter bounds the element count and the byte count,
// and every stride too (an empty [0, 2^62, 2^62] would otherwise have strides that wrap).
std::int64_t checked_numel(std::span<const std::int64_t> shape, std::size_t element_bytes) {
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  std::int64_t count = 1;
  std::int64_t extent = static_cast<std::int64_t>(element_bytes);
  for (std::int64_t dim : shape) {
    FUSEDMOE_CHECK(dim >= 0, "[tensor] shape has negative size ", dim);
    const std::int64_t factor = std::max<std::int64_t>(dim, 1);
    FUSEDMOE_CHECK(extent <= kMax / factor, "[tensor] shape ", shape_text(shape), " of ", element_bytes,
                   "-byte elements overflows a 64-bit byte count");
    extent *= factor;
    count *= dim;
  }
  return count;
}
}  // namespace

TensorView::TensorView(void* data, DType dtype, std::span<const std::int64_t> shape, Device device)
    : data_(data), dtype_(dtype), device_(device), rank_(static_cast<int>(shape.size())) {
  FUSEDMOE_CHECK(shape.size() >= 1 && shape.size() <= static_cast<std::size_t>(kMaxRank), "[tensor] rank ",
                 shape.size(), " is not supported: expected 1 to ", kMaxRank, " dimensions");
  (void)checked_numel(shape, dtype_size(dtype));  // byte counts (nbytes(), allocations, copies) cannot wrap
  for (std::size_t dim = 0; dim < shape.size(); ++dim) shape_[dim] = shape[dim];
}

std::int64_t TensorView::size(int dim) const {
  const int resolved = dim < 0 ? dim + rank_ : dim;
  FUSEDMOE_CHECK(resolved >= 0 && resolved < rank_, "[tensor] dimension ", dim,
                 " is out of range for a rank-", rank_, " tensor");
  return shape_[resolved];
}

std::int64_t TensorView::stride(int dim) const {
  const int resolved = dim < 0 ? dim + rank_ : dim;
  FUSEDMOE_CHECK(resolved >= 0 && resolved < rank_, "[tensor] dimension ", dim,
                 " is out of range for a rank-", rank_, " tensor");
  std::int64_t stride = 1;
  for (int later = resolved + 1; later < rank_; ++later) stride *= shape_[later];
  return stride;
}

std::int64_t TensorView::numel() const {
  if (rank_ == 0) return 0;
  std::int64_t count = 1;
  for (int dim = 0; dim < rank_; ++dim) count *= shape_[dim];
  return count;
}

TensorView TensorView::slice_rows(std::int64_t begin, std::int64_t end) const {
  FUSEDMOE_CHECK(defined(), "[tensor] slice_rows of an undefined tensor");
  FUSEDMOE_CHECK(0 <= begin && begin <= end && end <= shape_[0], "[tensor] rows [", begin, ", ", end,
                 ") out of range for ", shape_string());
  TensorView result = *this;
  result.shape_[0] = end - begin;
  result.data_ = static_cast<char*>(data_) + static_cast<std::size_t>(begin * stride(0)) * dtype_size(dtype_);
  return result;
}

TensorView TensorView::reshape(std::span<const std::int64_t> shape) const {
  TensorView result(data_, dtype_, shape, device_);
  FUSEDMOE_CHECK(result.numel() == numel(), "[tensor] cannot reshape ", shape_string(), " to ",
                 result.shape_string(), ": element counts differ");
  return result;
}

std::string TensorView::shape_string() const {
  std::string text;
  for (int dim = 0; dim < rank_; ++dim) append_joined(text, ", ", std::to_string(shape_[dim]));
  return "[" + text + "]";
}

std::string TensorView::describe() const {
  if (!defined()) return "undefined";
  return str_cat(shape_string(), " ", to_string(dtype_), " ", to_string(device_));
}

Tensor Tensor::empty(DType dtype, std::span<const std::int64_t> shape, Device device) {
  Tensor tensor;
  TensorView probe(nullptr, dtype, shape, device);
  tensor.storage_ = allocate_device_memory(device, probe.nbytes());
  tensor.view_ = TensorView(tensor.storage_.get(), dtype, shape, device);
  return tensor;
}

Tensor Tensor::zeros(DType dtype, std::span<const std::int64_t> shape, Device device) {
  Tensor tensor = empty(dtype, shape, device);
  if (device.is_cpu()) {
    std::memset(tensor.data(), 0, tensor.nbytes());
  } else {
    const DeviceMemoryHooks& hooks = cuda_memory_hooks();
    hooks.fill_zero(tensor.data(), device, tensor.nbytes(), nullptr);
  }
  return tensor;
}

Tensor Tensor::copy_of(const TensorView& source) {
  FUSEDMOE_CHECK(source.defined(), "[tensor] copy_of an undefined tensor");
  Tensor tensor = empty(source.dtype(), source.shape(), source.device());
  copy_tensor(source, tensor.view());
  return tensor;
}

Tensor Tensor::to_dtype(DType dtype) const {
  FUSEDMOE_CHECK(defined(), "[tensor] to_dtype of an undefined tensor");
  FUSEDMOE_CHECK(device().is_cpu(), "[tensor] to_dtype needs a CPU tensor, got ", describe());
  Tensor result = empty(dtype, shape(), device());
  convert_elements(data(), this->dtype(), result.data(), dtype, static_cast<std::size_t>(numel()));
  return result;
}

void copy_tensor(const TensorView& source, const TensorView& destination, const ExecContext& context) {
  FUSEDMOE_CHECK(source.dtype() == destination.dtype(), "[tensor] copy: dtypes differ: ", source.describe(),
                 " -> ", destination.describe());
  FUSEDMOE_CHECK(source.numel() == destination.numel(),
                 "[tensor] copy: element counts differ: ", source.describe(), " -> ", destination.describe());
  if (source.nbytes() == 0) return;
  if (source.device().is_cpu() && destination.device().is_cpu()) {
    std::memmove(destination.data(), source.data(), source.nbytes());
    return;
  }
  const DeviceMemoryHooks& hooks = cuda_memory_hooks();
  if (hooks.copy == nullptr) {
    throw Unsupported(str_cat("[tensor] copy ", source.describe(), " -> ", destination.describe(),
                              ": fusedmoe was built without CUDA"));
  }
  hooks.copy(destination.data(), destination.device(), source.data(), source.device(), source.nbytes(),
             context.stream);
}

}  // namespace fusedmoe
