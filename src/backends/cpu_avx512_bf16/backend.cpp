// cpu_avx512_bf16: bf16 weights prepacked into panels, AVX-512 fp32-FMA panel kernel (see cpu_prepacked/).
#include "backends/backends.hpp"
#include "backends/cpu_avx512_bf16/kernels/avx512_bf16_panel.hpp"
#include "backends/cpu_prepacked/prepacked_experts.hpp"
#include "core/cpu_features.hpp"

namespace fusedmoe {

namespace {
// bf16 activations on a CPU with AVX512_BF16: the dot-product kernel (twice the fp32-FMA rate there);
// otherwise bf16 weights widened to fp32 and FMAs (exact for fp32 activations).
prepacked::PanelKernelInfo kernel_for(const MoeConfig& config) {
  const bool dot = config.act_dtype == DType::bf16 && detect_cpu().isa >= CpuIsa::avx512_bf16;
  return dot ? prepacked::avx512_bf16_dot_kernel() : prepacked::avx512_panel_kernel();
}
}  // namespace

BackendInfo cpu_avx512_bf16_backend() {
  BackendInfo info;
  info.id = "cpu_avx512_bf16";
  info.device_kind = DeviceKind::cpu;
  info.kind = ExpertsKind::modular;
  info.supports = [](const MoeConfig& config, const Platform& platform, ActivationFormat format) -> Support {
    if (platform.cpu.isa < CpuIsa::avx512) {
      return Support::no("needs AVX-512 (F, BW, DQ, VL); this CPU's level is " +
                         std::string(to_string(platform.cpu.isa)) + " (" + platform.cpu.features + ")");
    }
    return prepacked::supports_prepacked(config, format);
  };
  info.convert_weights = [](const Tensor& w13, const Tensor& w2, const MoeConfig& config) {
    return prepacked::pack_weights(w13, w2, config, kernel_for(config).layout);
  };
  info.make_experts = [](const MoeConfig& config) {
    return std::make_unique<prepacked::PrepackedExperts>(config, kernel_for(config), "cpu_avx512_bf16");
  };
  return info;
}

}  // namespace fusedmoe
