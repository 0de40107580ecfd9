// Expert placement across expert-parallel ranks: which global experts a rank holds.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "fusedmoe/config.hpp"
#include "fusedmoe/tensor.hpp"

namespace fusedmoe {

// Global ids held by `rank` of `ep_size` under a placement, ascending by local id.
// linear: contiguous ranges, the first E % ep_size ranks take one more; round_robin: rank, rank + ep, ...
std::vector<std::int32_t> local_experts(std::int64_t num_experts, int ep_size, int rank,
                                        ExpertPlacement placement);
// The experts `ids` of a stacked [E, ...] weight tensor, in that order ([ids.size(), ...], CPU).
Tensor gather_experts(const Tensor& stacked, std::span<const std::int32_t> ids);
// [E] int32: global -> local id, -1 where not on this rank.
Tensor make_expert_map(std::int64_t num_experts, int ep_size, int rank, ExpertPlacement placement);

}  // namespace fusedmoe
