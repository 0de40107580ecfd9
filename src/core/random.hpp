// Deterministic random tensors (for the CLI's built-in weights, benchmarks and tests).
#pragma once

#include <cstdint>

#include "fusedmoe/tensor.hpp"

namespace fusedmoe {

// Fills a CPU floating tensor with normal(0, stddev) values from a counter-based generator: the
// result depends only on (seed, element index), not on thread count.
void fill_normal(const TensorView& tensor, std::uint64_t seed, float stddev);
// Uniform in [low, high).
void fill_uniform(const TensorView& tensor, std::uint64_t seed, float low, float high);

// Poisons a floating tensor with NaN (so a kernel that skips an element is caught).
void fill_nan(const TensorView& tensor);

// SplitMix64 step: a good 64-bit mix of a counter.
inline std::uint64_t mix64(std::uint64_t value) {
  value += 0x9e3779b97f4a7c15ull;
  value = (value ^ (value >> 30)) * 0xbf58476d1ce4e5b9ull;
  value = (value ^ (value >> 27)) * 0x94d049bb133111ebull;
  return value ^ (value >> 31);
}

}  // namespace fusedmoe
