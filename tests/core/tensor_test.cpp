#include <gtest/gtest.h>

#include "fusedmoe/fusedmoe.hpp"

namespace fusedmoe {
namespace {

TEST(Tensor, ShapesStridesAndViews) {
  const Tensor tensor = Tensor::zeros(DType::bf16, {4, 3, 5});
  EXPECT_EQ(tensor.numel(), 60);
  EXPECT_EQ(tensor.nbytes(), 120u);
  EXPECT_EQ(tensor.view().stride(0), 15);
  EXPECT_EQ(tensor.view().stride(-1), 1);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(tensor.data()) % 64, 0u) << "CPU storage is 64-byte aligned";
  const TensorView rows = tensor.view().slice_rows(1, 3);
  EXPECT_EQ(rows.size(0), 2);
  EXPECT_EQ(static_cast<char*>(rows.data()) - static_cast<char*>(tensor.data()), 30);
  EXPECT_EQ(tensor.view().reshape({12, 5}).size(0), 12);
  EXPECT_EQ(tensor.describe(), "[4, 3, 5] bf16 cpu");
  EXPECT_THROW(tensor.view().reshape({7, 5}), InvalidArgument);
  EXPECT_THROW(tensor.view().slice_rows(2, 5), InvalidArgument);
  EXPECT_THROW(tensor.size(3), InvalidArgument);
  EXPECT_THROW(Tensor::empty(DType::fp32, {2, -1}), InvalidArgument);
  EXPECT_THROW(Tensor::empty(DType::fp32, {1, 2, 3, 4, 5}), InvalidArgument);
  // 2^62 fp32 elements fit a 64-bit element count but not a byte count (it would wrap to 0 bytes).
  EXPECT_THROW(Tensor::empty(DType::fp32, {std::int64_t{1} << 62}), InvalidArgument);
  EXPECT_THROW(TensorView(nullptr, DType::bf16, {std::int64_t{1} << 31, std::int64_t{1} << 31}),
               InvalidArgument);
  // An empty tensor's other sizes bound its strides: [0, 2^62, 2^62] has no elements but strides that wrap.
  EXPECT_THROW(TensorView(nullptr, DType::bf16, {0, std::int64_t{1} << 62, std::int64_t{1} << 62}),
               InvalidArgument);
  EXPECT_EQ(TensorView(nullptr, DType::bf16, {0, 1 << 20, 1 << 20}).stride(0), std::int64_t{1} << 40);
  EXPECT_FALSE(TensorView().defined());
}

TEST(Tensor, CopiesShareStorageAndClonesDoNot) {
  Tensor a = Tensor::zeros(DType::fp32, {2});
  Tensor shared = a;
  Tensor deep = a.clone();
  a.data_as<float>()[0] = 3.0f;
  EXPECT_EQ(shared.data_as<float>()[0], 3.0f);
  EXPECT_EQ(deep.data_as<float>()[0], 0.0f);
  const Tensor half = a.to_dtype(DType::bf16);
  EXPECT_EQ(bf16_to_float(half.data_as<std::uint16_t>()[0]), 3.0f);
}

TEST(Tensor, CudaTensorsNeedACudaBuild) {
#if !FUSEDMOE_WITH_CUDA
  EXPECT_THROW(Tensor::empty(DType::fp32, {4}, Device::cuda(0)), Unsupported);
#else
  GTEST_SKIP() << "CUDA build: device allocation is tested by the CUDA suite";
#endif
}

TEST(Device, ParsesAndPrints) {
  EXPECT_EQ(parse_device("cuda:3"), Device::cuda(3));
  EXPECT_EQ(to_string(Device::cuda(1)), "cuda:1");
  EXPECT_THROW(parse_device("gpu"), InvalidArgument);
  EXPECT_THROW(parse_device("cuda:-1"), InvalidArgument);
}

}  // namespace
}  // namespace fusedmoe
