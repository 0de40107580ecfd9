// The fixed-seed routing of bench and tune.
#include "cli/routing_inputs.hpp"

#include <algorithm>
#include <utility>
#include <vector>

#include "core/check.hpp"
#include "core/random.hpp"

namespace fusedmoe::cli {

RoutingPattern routing_pattern_from_name(const std::string& name) {
  if (name == "uniform") return RoutingPattern::uniform;
  if (name == "skewed") return RoutingPattern::skewed;
  if (name == "balanced") return RoutingPattern::balanced;
  throw InvalidArgument(str_cat("routing '", name, "': expected uniform, skewed or balanced"));
}

void make_routing(std::int64_t tokens, std::int64_t experts, int top_k, RoutingPattern pattern,
                  std::uint64_t seed, const Tensor& ids, const Tensor& weights) {
  FUSEDMOE_CHECK(top_k >= 1 && top_k <= experts, "routing: top_k ", top_k,
                 " must be in [1, experts = ", experts, "]");
  std::uint64_t state = mix64(seed + 0x5eed);
  std::vector<std::int32_t> pool(static_cast<std::size_t>(experts));
  for (std::int64_t token = 0; token < tokens; ++token) {
    for (std::int64_t e = 0; e < experts; ++e) pool[e] = static_cast<std::int32_t>(e);
    float sum = 0.0f;
    for (int slot = 0; slot < top_k; ++slot) {
      state = mix64(state);
      std::int32_t id = 0;
      if (pattern == RoutingPattern::balanced) {
        // k consecutive residues mod E: distinct because k <= E.
        id = static_cast<std::int32_t>((token * top_k + slot) % experts);
      } else {
        std::int64_t pick =
            slot + static_cast<std::int64_t>(state % static_cast<std::uint64_t>(experts - slot));
        if (pattern == RoutingPattern::skewed && slot == 0) pick = 0;
        std::swap(pool[slot], pool[pick]);
        id = pool[slot];
      }
      ids.data_as<std::int32_t>()[token * top_k + slot] = id;
      const float weight = 0.05f + static_cast<float>((state >> 20) % 1000) / 1000.0f;
      weights.data_as<float>()[token * top_k + slot] = weight;
      sum += weight;
    }
    for (int slot = 0; slot < top_k; ++slot) weights.data_as<float>()[token * top_k + slot] /= sum;
  }
}

void make_router_logits(const Tensor& ids, std::int64_t experts, const Tensor& logits) {
  const std::int64_t tokens = ids.size(0), top_k = ids.size(1);
  float* values = logits.data_as<float>();
  std::fill(values, values + tokens * experts, 0.0f);
  for (std::int64_t token = 0; token < tokens; ++token) {
    for (std::int64_t slot = 0; slot < top_k; ++slot) {
      const std::int32_t expert = ids.data_as<const std::int32_t>()[token * top_k + slot];
      values[token * experts + expert] = 4.0f - static_cast<float>(slot) / static_cast<float>(top_k);
    }
  }
}

}  // namespace fusedmoe::cli
