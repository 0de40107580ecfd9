// `--device` for the commands that put tensors on it (run, check, bench, tune).
#pragma once

#include <string_view>

#include "fusedmoe/device.hpp"

namespace fusedmoe::cli {

// Refuses a CUDA device that is not there (no driver, no such index, a build without CUDA) before the first
// CUDA call, with the device probe's reason and what to do instead. `command` prefixes the message.
void require_device_present(Device device, std::string_view command);

}  // namespace fusedmoe::cli
