// cpu_avx512_bf16: bf16 weights prepacked into panels, AVX-512 fp32-FMA panel kernel (see cpu_prepacked/).
#include "backends/backends.hpp"
#include "backends/cpu_avx512_bf16/kernels/avx512_bf16_panel.hpp"
#include "backends/cpu_prepacked/prepacked_experts.hpp"

namespace fusedmoe {

BackendInfo cpu_avx512_bf16_backend() {
  BackendInfo info;
  info.id = "cpu_avx512_bf16";
  info.device_kind = DeviceKind::cpu;
  info.kind = ExpertsKind::modular;
  info.supports = [](const MoeConfig& config, const Platform& platform, ActivationFormat format) -> Support {
    if (platform.cpu.isa < CpuIsa::avx512) {
      return Support::no("needs AVX-512 (F, BW, DQ, VL); this CPU's level is " + std::string(to_string(platform.cpu.isa)) +
                         " (" + platform.cpu.features + ")");
    }
    return prepacked::supports_prepacked(config, format);
  };
  info.convert_weights = prepacked::pack_weights;
  info.make_experts = [](const MoeConfig& config) {
    return std::make_unique<prepacked::PrepackedExperts>(config, prepacked::avx512_panel_kernel(), "cpu_avx512_bf16");
  };
  return info;
}

}  // namespace fusedmoe
