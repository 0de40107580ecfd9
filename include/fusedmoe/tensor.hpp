// Tensors: TensorView (non-owning: pointer, dtype, shape, device) and Tensor (owning, reference
// counted: copies share storage; clone() makes a deep copy). Layouts are row-major contiguous.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>

#include "fusedmoe/device.hpp"
#include "fusedmoe/dtype.hpp"

namespace fusedmoe {

inline constexpr int kMaxRank = 4;

class TensorView {
 public:
  TensorView() = default;  // undefined: rank 0, no data
  TensorView(void* data, DType dtype, std::span<const std::int64_t> shape, Device device = Device::cpu());
  TensorView(void* data, DType dtype, std::initializer_list<std::int64_t> shape,
             Device device = Device::cpu())
      : TensorView(data, dtype, std::span<const std::int64_t>(shape.begin(), shape.size()), device) {}

  bool defined() const { return rank_ > 0; }
  void* data() const { return data_; }
  template <class T>
  T* data_as() const {
    return static_cast<T*>(data_);
  }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  int rank() const { return rank_; }
  std::span<const std::int64_t> shape() const { return {shape_.data(), static_cast<std::size_t>(rank_)}; }
  // Size of dimension `dim`; negative counts from the end. Throws InvalidArgument when out of range.
  std::int64_t size(int dim) const;
  // Element strides of the contiguous layout.
  std::int64_t stride(int dim) const;
  std::int64_t numel() const;
  std::size_t nbytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype_); }

  // Rows [begin, end) of the first dimension (a view of the same storage).
  TensorView slice_rows(std::int64_t begin, std::int64_t end) const;
  // The same data with another shape of equal element count.
  TensorView reshape(std::span<const std::int64_t> shape) const;
  TensorView reshape(std::initializer_list<std::int64_t> shape) const {
    return reshape(std::span<const std::int64_t>(shape.begin(), shape.size()));
  }
  // "[4, 256] bf16 cpu"
  std::string describe() const;
  std::string shape_string() const;  // "[4, 256]"

 private:
  void* data_ = nullptr;
  DType dtype_ = DType::fp32;
  Device device_{};
  int rank_ = 0;
  std::array<std::int64_t, kMaxRank> shape_{};
};

class Tensor {
 public:
  Tensor() = default;
  // Uninitialised storage, 64-byte aligned on the CPU; cudaMalloc on CUDA devices.
  static Tensor empty(DType dtype, std::span<const std::int64_t> shape, Device device = Device::cpu());
  static Tensor empty(DType dtype, std::initializer_list<std::int64_t> shape, Device device = Device::cpu()) {
    return empty(dtype, std::span<const std::int64_t>(shape.begin(), shape.size()), device);
  }
  static Tensor zeros(DType dtype, std::span<const std::int64_t> shape, Device device = Device::cpu());
  static Tensor zeros(DType dtype, std::initializer_list<std::int64_t> shape, Device device = Device::cpu()) {
    return zeros(dtype, std::span<const std::int64_t>(shape.begin(), shape.size()), device);
  }
  // A deep copy of a (CPU) view.
  static Tensor copy_of(const TensorView& source);

  const TensorView& view() const { return view_; }
  operator TensorView() const { return view_; }  // NOLINT: a Tensor is usable wherever a view is

  bool defined() const { return view_.defined(); }
  void* data() const { return view_.data(); }
  template <class T>
  T* data_as() const {
    return view_.data_as<T>();
  }
  DType dtype() const { return view_.dtype(); }
  Device device() const { return view_.device(); }
  int rank() const { return view_.rank(); }
  std::span<const std::int64_t> shape() const { return view_.shape(); }
  std::int64_t size(int dim) const { return view_.size(dim); }
  std::int64_t numel() const { return view_.numel(); }
  std::size_t nbytes() const { return view_.nbytes(); }
  std::string describe() const { return view_.describe(); }

  Tensor clone() const { return copy_of(view_); }
  // A CPU copy converted to another floating dtype (a plain copy when it already has it).
  Tensor to_dtype(DType dtype) const;

 private:
  std::shared_ptr<void> storage_;
  TensorView view_;
};

// Copies between two views of equal shape and dtype (CPU <-> CPU here; CUDA builds add the rest).
void copy_tensor(const TensorView& source, const TensorView& destination, const ExecContext& context = {});

}  // namespace fusedmoe
