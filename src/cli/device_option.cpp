#include "cli/device_option.hpp"

#include "core/check.hpp"
#include "fusedmoe/platform.hpp"

namespace fusedmoe::cli {

void require_device_present(Device device, std::string_view command) {
  if (!device.is_cuda()) return;
  const Platform platform = Platform::detect(device);
  FUSEDMOE_CHECK(
      platform.cuda.available, "[", command, "] --device ", to_string(device),
      ": no CUDA device there: ", platform.cuda.reason,
      " (--device cpu runs on the CPU; `fusedmoe backends --device cuda` says what each backend needs)");
}

}  // namespace fusedmoe::cli
