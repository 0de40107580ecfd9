#include "cli/output.hpp"

#include <cmath>
#include <iostream>

#include "core/elements.hpp"

namespace fusedmoe::cli {

Checksum checksum(const TensorView& tensor) {
  Checksum result;
  for (std::int64_t index = 0; index < tensor.numel(); ++index) {
    const double value = load_element(tensor.data(), tensor.dtype(), index);
    result.sum += value;
    result.abs_sum += std::abs(value);
  }
  return result;
}

void print_json_line(const nlohmann::json& object) {
  std::cout << object.dump() << std::endl;
}

}  // namespace fusedmoe::cli
