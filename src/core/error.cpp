#include "fusedmoe/error.hpp"

namespace fusedmoe {

std::string_view to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::invalid_argument:
      return "invalid argument";
    case ErrorKind::unsupported:
      return "unsupported";
    case ErrorKind::io:
      return "io";
    case ErrorKind::cuda:
      return "cuda";
    case ErrorKind::comm:
      return "comm";
    case ErrorKind::internal:
      return "internal";
  }
  return "unknown";
}

}  // namespace fusedmoe
