#include "kernel/weight_and_reduce.hpp"

#include <cstring>
#include <vector>

#include "core/check.hpp"
#include "core/elements.hpp"
#include "core/threading.hpp"

namespace fusedmoe {

void weight_and_reduce_standard(const TensorView& expert_out, const TensorView& topk_weights,
                                const TensorView& out, int num_threads) {
  const std::int64_t num_tokens = out.size(0);
  const std::int64_t hidden = out.size(1);
  const std::int64_t top_k = topk_weights.size(1);
  FUSEDMOE_ASSERT(expert_out.numel() == num_tokens * top_k * hidden);
  const float* weights = topk_weights.data_as<const float>();
  parallel_for(num_tokens, num_threads, [&](std::int64_t begin, std::int64_t end) {
    std::vector<float> row(static_cast<std::size_t>(hidden));
    for (std::int64_t token = begin; token < end; ++token) {
      std::fill(row.begin(), row.end(), 0.0f);
      for (std::int64_t slot = 0; slot < top_k; ++slot) {
        const float weight = weights[token * top_k + slot];
        const std::int64_t base = (token * top_k + slot) * hidden;
        for (std::int64_t column = 0; column < hidden; ++column) {
          row[column] += weight * load_element(expert_out.data(), expert_out.dtype(), base + column);
        }
      }
      for (std::int64_t column = 0; column < hidden; ++column) {
        store_element(out.data(), out.dtype(), token * hidden + column, row[column]);
      }
    }
  });
}

void weight_and_reduce_batched(const DispatchedTokens& dispatched, const TensorView& expert_out,
                               const TensorView& accumulator, const TensorView& out, int num_threads) {
  const std::int64_t num_tokens = out.size(0);
  const std::int64_t hidden = out.size(1);
  const std::int64_t num_local_experts = expert_out.size(0);
  const std::int64_t capacity = expert_out.size(1);
  const auto* counts = dispatched.expert_num_tokens.data_as<const std::int32_t>();
  const auto* slot_token = dispatched.slot_token.data_as<const std::int32_t>();
  const auto* slot_weight = dispatched.topk_weights.data_as<const float>();
  auto* sums = accumulator.data_as<float>();
  std::memset(sums, 0, static_cast<std::size_t>(num_tokens * hidden) * sizeof(float));
  // Split by hidden columns so every thread walks the experts in the same (ascending) order.
  parallel_for(hidden, num_threads, [&](std::int64_t column_begin, std::int64_t column_end) {
    for (std::int64_t expert = 0; expert < num_local_experts; ++expert) {
      for (std::int64_t slot = 0; slot < counts[expert]; ++slot) {
        const std::int64_t index = expert * capacity + slot;
        const std::int64_t token = slot_token[index];
        const float weight = slot_weight[index];
        for (std::int64_t column = column_begin; column < column_end; ++column) {
          sums[token * hidden + column] +=
              weight * load_element(expert_out.data(), expert_out.dtype(), index * hidden + column);
        }
      }
    }
    for (std::int64_t token = 0; token < num_tokens; ++token) {
      for (std::int64_t column = column_begin; column < column_end; ++column) {
        store_element(out.data(), out.dtype(), token * hidden + column, sums[token * hidden + column]);
      }
    }
  });
}

}  // namespace fusedmoe
