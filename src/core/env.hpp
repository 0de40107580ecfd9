// Reading FUSEDMOE_* environment variables in one place.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>

namespace fusedmoe {

// The variable's value, or nullopt when unset or empty.
std::optional<std::string> env_string(const char* name);
// A positive integer, nullopt when unset; throws InvalidArgument when set to anything else.
std::optional<int> env_positive_int(const char* name);
// A two-valued switch: false when unset or `off_value`, true when `on_value`; throws InvalidArgument naming
// both otherwise.
bool env_switch(const char* name, const char* off_value, const char* on_value);
// One of several values: its index in `values`, 0 (the default) when unset; throws InvalidArgument naming
// them all otherwise ("expected auto, on or off").
int env_choice(const char* name, std::initializer_list<const char*> values);

}  // namespace fusedmoe
