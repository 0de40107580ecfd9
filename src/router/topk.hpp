// Per-row top-k selection with the router's tie rule (higher score first, then lower index).
#pragma once

#include <cstdint>
#include <span>

namespace fusedmoe {

// Writes the indices of the `k` best of `scores` (only where eligible[i], when eligible is not
// empty) into `selected`, best first; equal scores go to the lower index. Scores must not be NaN.
void select_topk(std::span<const float> scores, std::span<const std::uint8_t> eligible, int k,
                 std::span<std::int32_t> selected);

}  // namespace fusedmoe
