// Logging: everything the library says goes through one settable callback (default: stderr with a
// "fusedmoe:" prefix). FUSEDMOE_LOG_LEVEL selects the verbosity: off, error, warn (default), info,
// dispatch (each oracle decision, one line per skipped candidate), debug. A comma-separated list
// takes the most verbose entry. Hot paths log nothing.
#pragma once

#include <functional>
#include <string_view>

namespace fusedmoe {

enum class LogLevel { off = 0, error, warn, info, dispatch, debug };

std::string_view to_string(LogLevel level);
using LogCallback = std::function<void(LogLevel, std::string_view message)>;

// Replaces the sink (nullptr restores the default stderr sink). Thread-safe.
void set_log_callback(LogCallback callback);
// Overrides FUSEDMOE_LOG_LEVEL.
void set_log_level(LogLevel level);
LogLevel log_level();
bool log_enabled(LogLevel level);
void log(LogLevel level, std::string_view message);

}  // namespace fusedmoe
