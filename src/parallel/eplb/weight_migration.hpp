// Moving expert weights between ranks after a rebalance, one layer (one tensor) at a time.
#pragma once

#include <cstdint>
#include <vector>

#include "fusedmoe/communicator.hpp"
#include "fusedmoe/tensor.hpp"

namespace fusedmoe {

// Physical slots are spread evenly: rank r holds slots [r * S, (r + 1) * S), S = P / ranks. `local` is
// this rank's [S, ...] stack under `old_physical_to_logical`; the result is its stack under
// `new_physical_to_logical`. A slot whose logical expert this rank already holds is copied locally;
// every other one is received from the lowest rank that holds it, by pairwise send/receive rounds
// (round d: send to rank + d, receive from rank - d), so no rank waits on another.
Tensor migrate_expert_weights(Communicator& communicator,
                              const std::vector<std::int32_t>& old_physical_to_logical,
                              const std::vector<std::int32_t>& new_physical_to_logical, const Tensor& local);

}  // namespace fusedmoe
