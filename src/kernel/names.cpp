#include "fusedmoe/kernel.hpp"

namespace fusedmoe {

std::string_view to_string(ActivationFormat format) {
  return format == ActivationFormat::standard ? "standard" : "batched";
}
std::string_view to_string(WeightAndReduce policy) {
  return policy == WeightAndReduce::by_experts ? "by_experts" : "by_finalize";
}
std::string_view to_string(ExpertsKind kind) {
  return kind == ExpertsKind::modular ? "modular" : "monolithic";
}

}  // namespace fusedmoe
