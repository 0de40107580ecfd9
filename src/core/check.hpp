// Internal checking helpers: FUSEDMOE_CHECK for anything a user can cause (InvalidArgument),
// FUSEDMOE_ASSERT for bugs (InternalError with file:line). Messages are built from streamable parts.
#pragma once

#include <sstream>
#include <string>

#include "fusedmoe/error.hpp"
#include "fusedmoe/tensor.hpp"

namespace fusedmoe {

template <class... Parts>
std::string str_cat(const Parts&... parts) {
  std::ostringstream stream;
  (stream << ... << parts);
  return stream.str();
}

}  // namespace fusedmoe

#define FUSEDMOE_CHECK(cond, ...)                                            \
  do {                                                                       \
    if (!(cond)) throw ::fusedmoe::InvalidArgument(::fusedmoe::str_cat(__VA_ARGS__)); \
  } while (0)

#define FUSEDMOE_ASSERT(cond, ...)                                                                 \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      throw ::fusedmoe::InternalError(::fusedmoe::str_cat("internal error at ", __FILE__, ":", __LINE__, \
                                                          ": ", #cond, ". ", ##__VA_ARGS__));      \
  } while (0)
