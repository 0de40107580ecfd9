// Internal checking helpers: FUSEDMOE_CHECK for anything a user can cause (InvalidArgument),
// FUSEDMOE_ASSERT for bugs (InternalError with file:line). Messages are built from streamable parts.
#pragma once

#include <sstream>
#include <string>
#include <string_view>

#include "fusedmoe/error.hpp"
#include "fusedmoe/tensor.hpp"

namespace fusedmoe {

template <class... Parts>
std::string str_cat(const Parts&... parts) {
  std::ostringstream stream;
  (stream << ... << parts);
  return stream.str();
}

// Appends `item` to a separator-joined list.
inline void append_joined(std::string& list, std::string_view separator, std::string_view item) {
  if (!list.empty()) list.append(separator);
  list.append(item);
}

}  // namespace fusedmoe

#define FUSEDMOE_CHECK(cond, ...)                                                     \
  do {                                                                                \
    if (!(cond)) throw ::fusedmoe::InvalidArgument(::fusedmoe::str_cat(__VA_ARGS__)); \
  } while (0)

#define FUSEDMOE_ASSERT(cond, ...)                                                                       \
  do {                                                                                                   \
    if (!(cond))                                                                                         \
      throw ::fusedmoe::InternalError(::fusedmoe::str_cat("internal error at ", __FILE__, ":", __LINE__, \
                                                          ": ", #cond, ". ", ##__VA_ARGS__));            \
  } while (0)
