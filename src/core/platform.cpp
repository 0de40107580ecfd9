#include "fusedmoe/platform.hpp"

#include "core/check.hpp"
#include "core/cpu_features.hpp"
#include "core/cuda_runtime.hpp"

namespace fusedmoe {

namespace {
// CUDA builds install a probe (src/backends/cuda_common); without it CUDA reports unavailable.
CudaInfo (*g_cuda_probe)(int device_index) = nullptr;
}  // namespace

void set_cuda_probe(CudaProbe probe) {
  g_cuda_probe = probe;
}

Platform Platform::detect(Device device) {
  Platform platform;
  platform.device = device;
  platform.cpu = detect_cpu();
  platform.built_with_cuda = FUSEDMOE_WITH_CUDA;
  if (device.is_cuda()) {
#if FUSEDMOE_WITH_CUDA
    install_cuda_runtime();
#endif
    if (g_cuda_probe != nullptr) {
      platform.cuda = g_cuda_probe(device.index);
    } else {
      platform.cuda.reason = "fusedmoe was built without CUDA (FUSEDMOE_CUDA=OFF or no CUDA compiler)";
    }
  }
  return platform;
}

std::string Platform::describe() const {
  std::string text = str_cat("device ", to_string(device), "; cpu isa ", to_string(cpu.isa), " (",
                             cpu.features, "), ", cpu.num_cores, " cores");
  if (device.is_cuda()) {
    text += cuda.available
                ? str_cat("; ", cuda.name, " sm_", cuda.compute_capability, ", ", cuda.num_sms, " SMs")
                : str_cat("; no CUDA device available: ", cuda.reason);
  }
  return text;
}

}  // namespace fusedmoe
