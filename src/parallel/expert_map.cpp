#include "parallel/expert_map.hpp"

#include <cstring>

#include "core/check.hpp"

namespace fusedmoe {

std::vector<std::int32_t> local_experts(std::int64_t num_experts, int ep_size, int rank,
                                        ExpertPlacement placement) {
  FUSEDMOE_CHECK(ep_size >= 1 && ep_size <= num_experts, "[expert_map] ep_size = ", ep_size,
                 ": expected 1 <= ep_size <= num_experts = ", num_experts);
  FUSEDMOE_CHECK(rank >= 0 && rank < ep_size, "[expert_map] rank = ", rank, ": expected 0 <= rank < ",
                 ep_size);
  std::vector<std::int32_t> held;
  if (placement == ExpertPlacement::round_robin) {
    for (std::int64_t expert = rank; expert < num_experts; expert += ep_size) {
      held.push_back(static_cast<std::int32_t>(expert));
    }
    return held;
  }
  const std::int64_t base = num_experts / ep_size;
  const std::int64_t extra = num_experts % ep_size;
  const std::int64_t first = rank * base + std::min<std::int64_t>(rank, extra);
  const std::int64_t count = base + (rank < extra ? 1 : 0);
  for (std::int64_t expert = first; expert < first + count; ++expert)
    held.push_back(static_cast<std::int32_t>(expert));
  return held;
}

Tensor gather_experts(const Tensor& stacked, std::span<const std::int32_t> ids) {
  FUSEDMOE_CHECK(stacked.device().is_cpu() && stacked.rank() >= 2,
                 "[expert_map] gather_experts needs a CPU tensor ", "[E, ...], got ", stacked.describe());
  std::vector<std::int64_t> shape(stacked.shape().begin(), stacked.shape().end());
  shape[0] = static_cast<std::int64_t>(ids.size());
  Tensor result = Tensor::empty(stacked.dtype(), shape);
  const std::size_t block = stacked.nbytes() / static_cast<std::size_t>(stacked.size(0));
  for (std::size_t index = 0; index < ids.size(); ++index) {
    FUSEDMOE_CHECK(ids[index] >= 0 && ids[index] < stacked.size(0), "[expert_map] expert ", ids[index],
                   ": expected 0 <= id < ", stacked.size(0));
    std::memcpy(result.data_as<char>() + index * block, stacked.data_as<const char>() + ids[index] * block,
                block);
  }
  return result;
}

Tensor make_expert_map(std::int64_t num_experts, int ep_size, int rank, ExpertPlacement placement) {
  Tensor map = Tensor::empty(DType::int32, {num_experts});
  auto* values = map.data_as<std::int32_t>();
  std::fill(values, values + num_experts, -1);
  const std::vector<std::int32_t> held = local_experts(num_experts, ep_size, rank, placement);
  for (std::size_t local = 0; local < held.size(); ++local)
    values[held[local]] = static_cast<std::int32_t>(local);
  return map;
}

}  // namespace fusedmoe
