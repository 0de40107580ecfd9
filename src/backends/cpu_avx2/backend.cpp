// cpu_avx2: the portable fast path for CPUs without AVX-512: the same prepacked panels, AVX2 + FMA kernel.
#include "backends/backends.hpp"
#include "backends/cpu_avx2/kernels/avx2_bf16_panel.hpp"
#include "backends/cpu_prepacked/prepacked_experts.hpp"

namespace fusedmoe {

BackendInfo cpu_avx2_backend() {
  BackendInfo info;
  info.id = "cpu_avx2";
  info.device_kind = DeviceKind::cpu;
  info.kind = ExpertsKind::modular;
  info.supports = [](const MoeConfig& config, const Platform& platform, ActivationFormat format) -> Support {
    if (platform.cpu.isa < CpuIsa::avx2) {
      return Support::no("needs AVX2 + FMA + F16C; this CPU's level is " +
                         std::string(to_string(platform.cpu.isa)));
    }
    return prepacked::supports_prepacked(config, format);
  };
  info.convert_weights = [](const Tensor& w13, const Tensor& w2, const MoeConfig& config) {
    return prepacked::pack_weights(w13, w2, config, prepacked::PanelLayout::widen);
  };
  info.make_experts = [](const MoeConfig& config) {
    return std::make_unique<prepacked::PrepackedExperts>(config, prepacked::avx2_panel_kernel(), "cpu_avx2");
  };
  return info;
}

}  // namespace fusedmoe
