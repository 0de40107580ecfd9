// Option validators whose messages say what was given and what is allowed (CLI11's PositiveNumber and
// NonNegativeNumber print their range as 0 to 1.8e308).
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace fusedmoe::cli {

// A `Number` option of at least `minimum`: "--tokens: -1: expected an integer >= 0".
template <class Number>
CLI::Validator at_least_of(Number minimum, const std::string& kind) {
  const std::string bound = CLI::detail::to_string(minimum);
  return CLI::Validator(
      [minimum, kind, bound](std::string& value) -> std::string {
        Number number{};
        if (!CLI::detail::lexical_cast(value, number) || !(number >= minimum)) {
          return value + ": expected " + kind + " >= " + bound;
        }
        return {};
      },
      ">=" + bound, "at_least");
}

inline CLI::Validator at_least(long long minimum) {
  return at_least_of(minimum, "an integer");
}
inline CLI::Validator at_least_real(double minimum) {
  return at_least_of(minimum, "a number");
}

// --threads: 0 (the default count) to kMaxThreads; more would fail in the OpenMP runtime, not here.
inline constexpr int kMaxThreads = 4096;
inline CLI::Validator thread_count() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        long long number = 0;
        if (!CLI::detail::lexical_cast(value, number) || number < 0 || number > kMaxThreads) {
          return value + ": expected an integer from 0 (all available cores) to " +
                 std::to_string(kMaxThreads);
        }
        return {};
      },
      "0-" + std::to_string(kMaxThreads), "thread_count");
}

}  // namespace fusedmoe::cli
