#include "fusedmoe/version.hpp"

namespace fusedmoe {
const char* version_string() {
  return "0.1.0";
}
}  // namespace fusedmoe
