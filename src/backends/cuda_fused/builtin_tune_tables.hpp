// cuda_fused's built-in tune tables: measured choices per token bucket for known (device, shape) keys, used
// when FUSEDMOE_TUNE_FILE has no entry for the shape (oracle/tuning.hpp has the format).
#pragma once

#include <optional>

#include "oracle/tuning.hpp"

namespace fusedmoe::cuda_fused {

// Every built-in entry (parsed once).
const TuneTable& builtin_tune_tables();
// The built-in entry for `key`; nullopt when there is none or FUSEDMOE_TUNE_BUILTIN=off (on: the default;
// any other value throws InvalidArgument).
std::optional<TuneEntry> builtin_tune_entry(const TuneKey& key);

}  // namespace fusedmoe::cuda_fused
