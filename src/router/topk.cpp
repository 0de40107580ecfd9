#include "router/topk.hpp"

#include "core/check.hpp"

namespace fusedmoe {

void select_topk(std::span<const float> scores, std::span<const std::uint8_t> eligible, int k,
                 std::span<std::int32_t> selected) {
  FUSEDMOE_ASSERT(static_cast<std::size_t>(k) <= selected.size());
  // Insertion into a sorted list of at most k entries: O(E k), branch-light for the small k of MoE.
  int count = 0;
  const auto better = [&](std::int32_t a, std::int32_t b) {
    return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
  };
  for (std::size_t index = 0; index < scores.size(); ++index) {
    if (!eligible.empty() && !eligible[index]) continue;
    const auto candidate = static_cast<std::int32_t>(index);
    if (count == k && !better(candidate, selected[count - 1])) continue;
    int position = count < k ? count++ : k - 1;
    while (position > 0 && better(candidate, selected[position - 1])) {
      selected[position] = selected[position - 1];
      --position;
    }
    selected[position] = candidate;
  }
  FUSEDMOE_ASSERT(count == k, "fewer eligible entries (", count, ") than k = ", k);
}

}  // namespace fusedmoe
