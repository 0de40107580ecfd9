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

ExpertsProblem standard_problem(std::int64_t rows, const MoeConfig& config) {
  return {.format = ActivationFormat::standard,
          .num_tokens = rows,
          .num_local_experts = config.num_local_experts(),
          .num_experts = config.num_experts,
          .top_k = config.routing.top_k,
          .hidden_size = config.hidden_size,
          .intermediate_size = config.intermediate_size};
}

}  // namespace fusedmoe
