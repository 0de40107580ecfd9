// The documented drop rule of all2all_batched, written out on the host for the tests: in each call (a chunk
// of `chunk` consecutive local tokens), the (token, slot) pairs a rank sends to one destination rank are
// taken in ascending (token, slot) order and those past `rank_capacity` are dropped. A dropped pair
// contributes nothing, which is what the single-rank output gives with its routing weight set to 0.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "fusedmoe/tensor.hpp"
#include "parallel/expert_map.hpp"

namespace fusedmoe::testing {

// Zeroes the weights of the pairs that rank's tokens [begin, end) of `ids` / `weights` ([M, k], CPU) lose
// under the rule above; returns how many.
inline std::int64_t zero_dropped_pairs(const Tensor& ids, Tensor& weights, std::int64_t begin,
                                       std::int64_t end, std::int64_t chunk, std::int64_t rank_capacity,
                                       std::int64_t num_experts, int ranks, ExpertPlacement placement) {
  std::vector<int> owner(static_cast<std::size_t>(num_experts), -1);
  for (int rank = 0; rank < ranks; ++rank) {
    for (std::int32_t expert : local_experts(num_experts, ranks, rank, placement)) owner[expert] = rank;
  }
  const std::int64_t k = ids.size(1);
  std::int64_t dropped = 0;
  for (std::int64_t call = begin; call < end; call += chunk) {
    std::vector<std::int64_t> sent(static_cast<std::size_t>(ranks), 0);
    for (std::int64_t pair = call * k; pair < std::min(end, call + chunk) * k; ++pair) {
      const int destination = owner[ids.data_as<const std::int32_t>()[pair]];
      if (sent[destination]++ < rank_capacity) continue;
      weights.data_as<float>()[pair] = 0.0f;
      ++dropped;
    }
  }
  return dropped;
}

}  // namespace fusedmoe::testing
