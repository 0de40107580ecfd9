// The fixed-seed routing `fusedmoe bench` and `fusedmoe tune` time with.
#pragma once

#include <cstdint>
#include <string>

#include "fusedmoe/tensor.hpp"

namespace fusedmoe::cli {

// How the timed tokens pick their experts:
//   uniform   top-k distinct experts per token, uniform (fixed seed): the benchmark routing;
//   skewed    the same, but every token's first choice is expert 0 (a hot expert);
//   balanced  token t's slot j takes expert (t * k + j) mod E: every expert gets floor or ceil of M * k / E
//             pairs, so the expert GEMMs' row padding is known exactly (M * k / E a multiple of the tile's
//             rows: none), which separates padding from the kernels' own speed.
enum class RoutingPattern { uniform, skewed, balanced };

// The pattern named `name` (uniform, skewed or balanced); InvalidArgument for any other name.
RoutingPattern routing_pattern_from_name(const std::string& name);

// Top-k ids (distinct per token) and weights (random, normalised per token; fixed seed) of `pattern`.
void make_routing(std::int64_t tokens, std::int64_t experts, int top_k, RoutingPattern pattern,
                  std::uint64_t seed, const Tensor& ids, const Tensor& weights);

// Router logits [M, E] fp32 for monolithic backends, which route themselves: each token's ids [M, k] get the
// top logits, in slot order, the other experts 0. Recipes without groups then select exactly those ids.
void make_router_logits(const Tensor& ids, std::int64_t experts, const Tensor& logits);

}  // namespace fusedmoe::cli
