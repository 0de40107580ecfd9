#include "core/env.hpp"

#include <charconv>
#include <cstdlib>

#include "core/check.hpp"

namespace fusedmoe {

std::optional<std::string> env_string(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

std::optional<int> env_positive_int(const char* name) {
  const std::optional<std::string> text = env_string(name);
  if (!text) return std::nullopt;
  int value = 0;
  const auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), value);
  FUSEDMOE_CHECK(error == std::errc() && end == text->data() + text->size() && value > 0, "[env] ", name,
                 "='", *text, "': expected a positive integer");
  return value;
}

bool env_switch(const char* name, const char* off_value, const char* on_value) {
  const std::optional<std::string> text = env_string(name);
  if (!text || *text == off_value) return false;
  FUSEDMOE_CHECK(*text == on_value, name, "='", *text, "': expected ", off_value, " or ", on_value);
  return true;
}

int env_choice(const char* name, std::initializer_list<const char*> values) {
  const std::optional<std::string> text = env_string(name);
  if (!text) return 0;
  int index = 0;
  std::string expected;
  for (const char* value : values) {
    if (*text == value) return index;
    expected += index == 0 ? "" : (index + 1 == static_cast<int>(values.size()) ? " or " : ", ");
    expected += value;
    ++index;
  }
  throw InvalidArgument(str_cat(name, "='", *text, "': expected ", expected));
}

}  // namespace fusedmoe
