// Output helpers: checksums and the table / JSON-lines printing every command shares.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "fusedmoe/tensor.hpp"

namespace fusedmoe::cli {

// Sum of all elements (fp64) and of their absolute values: a quick fingerprint of an output.
struct Checksum {
  double sum = 0.0;
  double abs_sum = 0.0;
};
Checksum checksum(const TensorView& tensor);

// Prints one JSON object on one line to stdout.
void print_json_line(const nlohmann::json& object);

}  // namespace fusedmoe::cli
