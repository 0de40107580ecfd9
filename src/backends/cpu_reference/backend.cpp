#include "backends/backends.hpp"
#include "backends/cpu_reference/experts.hpp"

namespace fusedmoe {

BackendInfo cpu_reference_backend() {
  BackendInfo info;
  info.id = "cpu_reference";
  info.device_kind = DeviceKind::cpu;
  info.kind = ExpertsKind::modular;
  info.supports = [](const MoeConfig& config, const Platform&, ActivationFormat format) -> Support {
    if (Support device = reference_supports_device(config); !device) return device;
    if (format != ActivationFormat::standard) {
      return Support::no("consumes the standard format; the dispatch delivers " +
                         std::string(to_string(format)));
    }
    return Support::yes();
  };
  info.convert_weights = reference_convert_weights;
  info.make_experts = [](const MoeConfig& config) { return std::make_unique<ReferenceExperts>(config); };
  return info;
}

}  // namespace fusedmoe
