// cuda_fused's one-time weight conversion (from finalize_weights()): canonical bf16 weights, on the CPU or
// on the device, into the interleaved, zero-padded layout the GEMMs read (see experts.hpp). One expert at a
// time, so a CPU source needs only one expert's worth of staging memory on the device.
#include "backends/cuda_common/cuda_check.hpp"
#include "backends/cuda_fused/experts.hpp"
#include "backends/cuda_fused/kernels/launch.hpp"
#include "core/check.hpp"
#include "core/tensor_checks.hpp"

namespace fusedmoe::cuda_fused {

namespace {
std::int64_t round_up(std::int64_t value, std::int64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}
constexpr std::string_view kComponent = "cuda_fused";
}  // namespace

std::shared_ptr<const ExpertWeights> convert_weights(const Tensor& w13, const Tensor& w2,
                                                     const MoeConfig& config) {
  FUSEDMOE_CHECK(config.device.is_cuda(),
                 "[cuda_fused] converts weights for a CUDA device; config device is ",
                 to_string(config.device));
  const std::int64_t experts = config.num_local_experts(), hidden = config.hidden_size,
                     intermediate = config.intermediate_size;
  check_dtype(kComponent, "w13", w13, {DType::bf16});
  check_dtype(kComponent, "w2", w2, {DType::bf16});
  check_shape(kComponent, "w13", w13, {experts, 2 * intermediate, hidden});
  check_shape(kComponent, "w2", w2, {experts, hidden, intermediate});
  for (const auto& [name, tensor] : {std::pair<const char*, const Tensor&>{"w13", w13}, {"w2", w2}}) {
    FUSEDMOE_CHECK(tensor.device().is_cpu() || tensor.device() == config.device, "[cuda_fused] ", name,
                   ": expected ", "the CPU or ", to_string(config.device), ", got ", tensor.describe());
  }

  auto converted = std::make_shared<CudaFusedWeights>();
  converted->num_experts = experts;
  converted->hidden = hidden;
  converted->intermediate = intermediate;
  converted->intermediate_padded = round_up(intermediate, kWeightKPadding);
  converted->hidden_padded_k = round_up(hidden, kWeightKPadding);
  converted->hidden_padded_n = round_up(hidden, kWeightNPadding);
  const std::int64_t intermediate_padded = converted->intermediate_padded;
  converted->w13 = Tensor::empty(DType::bf16, {experts, 2 * intermediate_padded, converted->hidden_padded_k},
                                 config.device);
  converted->w2 =
      Tensor::empty(DType::bf16, {experts, converted->hidden_padded_n, intermediate_padded}, config.device);

  cuda::DeviceGuard guard(config.device.index);
  Tensor staging13, staging2;  // one expert, on the device, when the source is on the CPU
  if (w13.device().is_cpu())
    staging13 = Tensor::empty(DType::bf16, {2 * intermediate, hidden}, config.device);
  if (w2.device().is_cpu()) staging2 = Tensor::empty(DType::bf16, {hidden, intermediate}, config.device);
  const std::int64_t stride13 = 2 * intermediate_padded * converted->hidden_padded_k;
  const std::int64_t stride2 = converted->hidden_padded_n * intermediate_padded;
  for (std::int64_t expert = 0; expert < experts; ++expert) {
    const TensorView source13 = w13.view().slice_rows(expert, expert + 1);
    const TensorView source2 = w2.view().slice_rows(expert, expert + 1);
    // The legacy default stream orders each staging copy after the previous expert's conversion.
    if (staging13.defined()) copy_tensor(source13, staging13);
    if (staging2.defined()) copy_tensor(source2, staging2);
    launch_convert_w13(staging13.defined() ? staging13.data() : source13.data(), intermediate, hidden,
                       converted->w13.data_as<std::uint16_t>() + expert * stride13, intermediate_padded,
                       converted->hidden_padded_k, nullptr);
    launch_convert_w2(staging2.defined() ? staging2.data() : source2.data(), hidden, intermediate,
                      converted->w2.data_as<std::uint16_t>() + expert * stride2, converted->hidden_padded_n,
                      intermediate_padded, nullptr);
  }
  cuda::synchronize(nullptr);  // converted before any stream of the caller's reads it
  return converted;
}

}  // namespace fusedmoe::cuda_fused
