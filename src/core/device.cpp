#include "fusedmoe/device.hpp"

#include <charconv>

#include "core/check.hpp"

namespace fusedmoe {

std::string_view to_string(DeviceKind kind) {
  return kind == DeviceKind::cpu ? "cpu" : "cuda";
}

std::string to_string(Device device) {
  return device.is_cpu() ? std::string("cpu") : str_cat("cuda:", device.index);
}

Device parse_device(std::string_view text) {
  if (text == "cpu") return Device::cpu();
  if (text == "cuda") return Device::cuda(0);
  if (text.starts_with("cuda:")) {
    const std::string_view digits = text.substr(5);
    int index = -1;
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (error == std::errc() && end == digits.data() + digits.size() && index >= 0)
      return Device::cuda(index);
  }
  throw InvalidArgument(str_cat("[device] unknown device '", text, "': expected cpu, cuda or cuda:N"));
}

}  // namespace fusedmoe
