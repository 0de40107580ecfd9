// Checks a command makes on its options before any slow work (loading, measuring, timing), so that a typo
// fails at once with a message naming the option rather than minutes later.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace fusedmoe::cli {

// Every id names a registered backend; else InvalidArgument listing them ("[command] unknown backend ...").
void require_known_backends(const std::vector<std::string>& ids, std::string_view command);

// `path` can be written as a new or replaced file: its folder exists and is writable, and `path` is not a
// folder. Else InvalidArgument naming `option` and the reason.
void require_writable_file(const std::string& path, std::string_view command, std::string_view option);

}  // namespace fusedmoe::cli
