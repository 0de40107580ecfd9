// cpu_onednn_grouped's registry entry. Built with or without oneDNN: without it, the entry stays
// in the list and supports() says how to get it.
#include "backends/backends.hpp"
#include "core/check.hpp"

#if FUSEDMOE_WITH_ONEDNN
#include "backends/cpu_onednn_grouped/experts.hpp"
#endif

namespace fusedmoe {

namespace {

constexpr std::string_view kId = "cpu_onednn_grouped";

#if FUSEDMOE_WITH_ONEDNN

Support supports(const MoeConfig& config, const Platform& platform, ActivationFormat format) {
  if (!config.device.is_cpu())
    return Support::no("runs on the CPU; config device is " + to_string(config.device));
  if (platform.cpu.isa < CpuIsa::avx512_bf16) {
    return Support::no(str_cat("needs AVX512_BF16 (oneDNN's bf16 matmul); this CPU's level is ",
                               to_string(platform.cpu.isa)));
  }
  if (config.weight_dtype != DType::bf16) {
    return Support::no(str_cat("needs bf16 weights, got ", to_string(config.weight_dtype)));
  }
  if (config.act_dtype != DType::bf16) {
    return Support::no(str_cat("needs bf16 activations (oneDNN's bf16 matmul takes bf16 inputs), got ",
                               to_string(config.act_dtype)));
  }
  if (config.activation != Activation::silu && config.activation != Activation::gelu) {
    return Support::no(str_cat("supports silu and gelu, got ", to_string(config.activation)));
  }
  if (format != ActivationFormat::standard) {
    return Support::no(str_cat("consumes the standard format; the dispatch delivers ", to_string(format)));
  }
  return Support::yes();
}

#else

constexpr std::string_view kNotBuilt = "built without oneDNN (install libdnnl-dev and reconfigure)";

Support supports(const MoeConfig&, const Platform&, ActivationFormat) {
  return Support::no(std::string(kNotBuilt));
}

#endif

}  // namespace

BackendInfo cpu_onednn_grouped_backend() {
  BackendInfo info;
  info.id = std::string(kId);
  info.device_kind = DeviceKind::cpu;
  info.kind = ExpertsKind::modular;
  info.supports = supports;
#if FUSEDMOE_WITH_ONEDNN
  info.convert_weights = onednn_grouped_convert_weights;
  info.make_experts = [](const MoeConfig& config) -> std::unique_ptr<Experts> {
    return std::make_unique<OneDnnGroupedExperts>(config);
  };
#else
  info.convert_weights = [](const Tensor&, const Tensor&,
                            const MoeConfig&) -> std::shared_ptr<const ExpertWeights> {
    throw Unsupported(str_cat("[", kId, "] ", kNotBuilt));
  };
  info.make_experts = [](const MoeConfig&) -> std::unique_ptr<Experts> {
    throw Unsupported(str_cat("[", kId, "] ", kNotBuilt));
  };
#endif
  return info;
}

}  // namespace fusedmoe
