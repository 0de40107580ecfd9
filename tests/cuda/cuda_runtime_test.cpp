// The CUDA runtime glue: the probe, device tensors and copies through the memory hooks, CudaError.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "backends/cuda_common/cuda_check.hpp"
#include "backends/cuda_common/device_bench.hpp"
#include "cuda/cuda_testing.hpp"

namespace fusedmoe {
namespace {

using testing::kGpu;

TEST(CudaRuntime, ProbeReportsADeviceOrWhyNot) {
  const Platform platform = Platform::detect(kGpu);
  EXPECT_TRUE(platform.built_with_cuda);
  if (!platform.cuda.available) {
    EXPECT_FALSE(platform.cuda.reason.empty());
    EXPECT_NE(platform.describe().find(platform.cuda.reason), std::string::npos) << platform.describe();
    GTEST_SKIP() << "no CUDA device: " << platform.cuda.reason;
  }
  EXPECT_TRUE(platform.cuda.reason.empty());
  EXPECT_GE(platform.cuda.compute_capability, 50);
  EXPECT_GT(platform.cuda.num_sms, 0);
  EXPECT_GE(platform.cuda.shared_memory_per_block, 48u * 1024u);
  EXPECT_FALSE(platform.cuda.name.empty());
  // A device that does not exist is unavailable with a reason, not an exception.
  const Platform missing = Platform::detect(Device::cuda(1000));
  EXPECT_FALSE(missing.cuda.available);
  EXPECT_NE(missing.cuda.reason.find("does not exist"), std::string::npos) << missing.cuda.reason;
}

TEST(CudaRuntime, TensorsRoundTripThroughTheDevice) {
  FUSEDMOE_REQUIRE_CUDA();
  Tensor host = Tensor::empty(DType::fp32, {3, 5});
  for (int i = 0; i < 15; ++i) host.data_as<float>()[i] = static_cast<float>(i) * 0.5f - 2.0f;
  const Tensor device = testing::to_device(host);
  EXPECT_EQ(device.device(), kGpu);
  const Tensor device_copy = Tensor::empty(DType::fp32, {3, 5}, kGpu);
  copy_tensor(device, device_copy);  // device to device
  const Tensor back = testing::to_host(device_copy);
  EXPECT_TRUE(testing::bitwise_equal(host, back));
  // Views: a slice of a device tensor copies only its rows.
  const Tensor row = testing::to_host(device.view().slice_rows(1, 2));
  EXPECT_EQ(row.data_as<float>()[0], host.data_as<float>()[5]);

  const Tensor zeros = testing::to_host(Tensor::zeros(DType::bf16, {7, 9}, kGpu));
  for (int i = 0; i < 63; ++i) EXPECT_EQ(zeros.data_as<std::uint16_t>()[i], 0);
  const Tensor empty = Tensor::empty(DType::fp32, {0, 4}, kGpu);
  EXPECT_EQ(empty.numel(), 0);
  copy_tensor(empty, Tensor::empty(DType::fp32, {0, 4}));
}

TEST(CudaRuntime, ErrorsAreCudaErrorsWithCallCodeAndLocation) {
  FUSEDMOE_REQUIRE_CUDA();
  try {
    FUSEDMOE_CUDA_CHECK(cudaSetDevice(100000));
    FAIL() << "cudaSetDevice(100000) succeeded";
  } catch (const CudaError& error) {
    const std::string message = error.what();
    EXPECT_EQ(error.kind(), ErrorKind::cuda);
    EXPECT_NE(message.find("cudaSetDevice(100000)"), std::string::npos) << message;
    EXPECT_NE(message.find("cudaErrorInvalidDevice"), std::string::npos) << message;
    EXPECT_NE(message.find("(101)"), std::string::npos) << message;
    EXPECT_NE(message.find("cuda_runtime_test.cpp:"), std::string::npos) << message;
  }
  // Out of memory is a CudaError too, never an abort.
  EXPECT_THROW(Tensor::empty(DType::uint8, {std::int64_t{1} << 50}, kGpu), CudaError);
  // The device is still usable afterwards.
  EXPECT_NO_THROW(testing::to_host(Tensor::zeros(DType::fp32, {4}, kGpu)));
}

// The bench's GEMM ceiling runs on random operands unless FUSEDMOE_BENCH_GEMM_OPERANDS=zeros; anything
// else is refused with both choices named.
TEST(CudaBenchCeilings, GemmOperandsSwitch) {
  {
    testing::ScopedEnv unset("FUSEDMOE_BENCH_GEMM_OPERANDS", nullptr);
    EXPECT_FALSE(cuda::gemm_ceiling_on_zeros());
  }
  {
    testing::ScopedEnv zeros("FUSEDMOE_BENCH_GEMM_OPERANDS", "zeros");
    EXPECT_TRUE(cuda::gemm_ceiling_on_zeros());
  }
  testing::ScopedEnv bad("FUSEDMOE_BENCH_GEMM_OPERANDS", "ones");
  try {
    cuda::gemm_ceiling_on_zeros();
    FAIL() << "FUSEDMOE_BENCH_GEMM_OPERANDS=ones accepted";
  } catch (const InvalidArgument& error) {
    EXPECT_NE(std::string(error.what()).find("random or zeros"), std::string::npos) << error.what();
  }
}

// The random operands: uniform in [-1, 1] (bf16-rounded), a function of (index, seed), different seeds
// different values.
TEST(CudaBenchCeilings, UniformFillCoversTheRangeAndDependsOnTheSeed) {
  FUSEDMOE_REQUIRE_CUDA();
  constexpr std::int64_t kCount = 1 << 16;
  const Tensor first = testing::empty_poisoned(DType::bf16, {kCount});
  const Tensor again = testing::empty_poisoned(DType::bf16, {kCount});
  const Tensor other = testing::empty_poisoned(DType::bf16, {kCount});
  cuda::fill_uniform_bf16(first.data(), kCount, 1u, nullptr);
  cuda::fill_uniform_bf16(again.data(), kCount, 1u, nullptr);
  cuda::fill_uniform_bf16(other.data(), kCount, 2u, nullptr);
  const Tensor a = testing::to_host(first), b = testing::to_host(again), c = testing::to_host(other);
  EXPECT_TRUE(testing::bitwise_equal(a, b));
  std::int64_t differing = 0, negative = 0;
  float low = 1.0f, high = -1.0f;
  double sum = 0.0;
  for (std::int64_t i = 0; i < kCount; ++i) {
    const float value = bf16_to_float(a.data_as<std::uint16_t>()[i]);
    ASSERT_TRUE(value >= -1.0f && value <= 1.0f) << "value " << value << " at " << i;
    low = std::min(low, value);
    high = std::max(high, value);
    sum += value;
    negative += value < 0.0f;
    differing += a.data_as<std::uint16_t>()[i] != c.data_as<std::uint16_t>()[i];
  }
  EXPECT_LT(low, -0.99f);
  EXPECT_GT(high, 0.99f);
  EXPECT_NEAR(sum / kCount, 0.0, 0.02);
  EXPECT_NEAR(static_cast<double>(negative) / kCount, 0.5, 0.02);
  EXPECT_GT(differing, kCount * 9 / 10);
}

}  // namespace
}  // namespace fusedmoe
