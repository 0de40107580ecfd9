// Host side of the layer's small device kernels (see device_ops.hpp for the contracts).
#include <algorithm>

#include "backends/cuda_common/cuda_check.hpp"
#include "backends/cuda_common/device_ops.hpp"
#include "backends/cuda_common/kernels/layer_ops.cuh"
#include "core/check.hpp"

namespace fusedmoe::cuda {

namespace {
constexpr int kThreads = 256;

unsigned blocks_for(std::int64_t count) {
  const std::int64_t blocks = (count + kThreads - 1) / kThreads;
  FUSEDMOE_CHECK(blocks <= INT32_MAX, "[cuda] ", count, " elements exceed one launch");
  return static_cast<unsigned>(std::max<std::int64_t>(blocks, 1));
}
}  // namespace

void linear_fp32(const TensorView& hidden, const TensorView& weight, const TensorView& out,
                 const ExecContext& context) {
  const std::int64_t num_tokens = hidden.size(0), hidden_size = hidden.size(1), rows = weight.size(0);
  if (num_tokens == 0 || rows == 0) return;
  DeviceGuard guard(hidden.device().index);
  const std::int64_t token_blocks = (num_tokens + kLinearTile - 1) / kLinearTile;
  const std::int64_t row_blocks = (rows + kLinearTile - 1) / kLinearTile;
  FUSEDMOE_CHECK(token_blocks <= INT32_MAX && row_blocks <= 65535, "[cuda] linear_fp32: [", num_tokens, ", ",
                 rows, "] outputs exceed one launch");
  const dim3 grid(static_cast<unsigned>(token_blocks), static_cast<unsigned>(row_blocks));
  const dim3 block(kLinearTile, kLinearRowsPerPass);
  linear_fp32_kernel<<<grid, block, 0, stream_of(context)>>>(
      hidden.data(), element_type(hidden.dtype()), num_tokens, hidden_size, weight.data_as<const float>(),
      rows, out.data_as<float>());
  FUSEDMOE_CUDA_CHECK_LAUNCH();
}

void shared_experts_routing(const TensorView& gate_logits, const TensorView& ids, const TensorView& weights,
                            const ExecContext& context) {
  const std::int64_t num_tokens = ids.size(0);
  const int count = static_cast<int>(ids.size(1));
  if (num_tokens == 0) return;
  DeviceGuard guard(ids.device().index);
  shared_routing_kernel<<<blocks_for(num_tokens * count), kThreads, 0, stream_of(context)>>>(
      gate_logits.defined() ? gate_logits.data_as<const float>() : nullptr, num_tokens, count,
      ids.data_as<std::int32_t>(), weights.data_as<float>());
  FUSEDMOE_CUDA_CHECK_LAUNCH();
}

void add_in_place(const TensorView& out, const TensorView& addend, const ExecContext& context) {
  const std::int64_t count = out.numel();
  if (count == 0) return;
  DeviceGuard guard(out.device().index);
  add_in_place_kernel<<<blocks_for(count), kThreads, 0, stream_of(context)>>>(
      out.data(), addend.data(), element_type(out.dtype()), count);
  FUSEDMOE_CUDA_CHECK_LAUNCH();
}

void scale_by_routing_weight(const TensorView& hidden, const TensorView& topk_weights,
                             const TensorView& scaled, const TensorView& unit_weights,
                             const ExecContext& context) {
  const std::int64_t num_tokens = hidden.size(0), hidden_size = hidden.size(1);
  const int top_k = static_cast<int>(topk_weights.size(1));
  if (num_tokens == 0) return;
  DeviceGuard guard(hidden.device().index);
  const std::int64_t count = std::max(num_tokens * hidden_size, num_tokens * top_k);
  scale_rows_kernel<<<blocks_for(count), kThreads, 0, stream_of(context)>>>(
      hidden.data(), element_type(hidden.dtype()), num_tokens, hidden_size,
      topk_weights.data_as<const float>(), top_k, scaled.data(), unit_weights.data_as<float>());
  FUSEDMOE_CUDA_CHECK_LAUNCH();
}

}  // namespace fusedmoe::cuda
