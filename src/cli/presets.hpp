// Built-in model shapes (routed experts of the published Hugging Face configs).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "fusedmoe/config.hpp"

namespace fusedmoe::cli {

struct Preset {
  std::string_view name;
  std::string_view source;  // the model it comes from
  std::int64_t hidden_size, intermediate_size, num_experts;
  RoutingConfig routing;
};

std::span<const Preset> presets();
// Throws InvalidArgument listing the known names.
const Preset& find_preset(std::string_view name);
inline constexpr std::string_view kDefaultPreset = "small";

}  // namespace fusedmoe::cli
