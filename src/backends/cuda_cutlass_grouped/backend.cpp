// cuda_cutlass_grouped: the shared sort/gather/activation/reduce steps around two CUTLASS Hopper grouped
// GEMMs. Built with or without CUTLASS: without its headers (or without sm_90a among the CUDA architectures)
// the entry stays in the list and supports() says how to get it.
#include "backends/backends.hpp"
#include "backends/cuda_common/grouped_pipeline.hpp"
#include "core/check.hpp"

#if FUSEDMOE_WITH_CUTLASS
#include "backends/cuda_cutlass_grouped/experts.hpp"
#endif

namespace fusedmoe {

namespace {

constexpr std::string_view kId = "cuda_cutlass_grouped";

#if FUSEDMOE_WITH_CUTLASS

Support supports(const MoeConfig& config, const Platform& platform, ActivationFormat format) {
  Support common = cuda::grouped_pipeline_supports(config, platform, format);
  if (!common.ok) return common;
  // The kernel is compiled for sm_90a only (wgmma and TMA; arch-specific code runs on 9.0 and nothing else).
  if (platform.cuda.compute_capability != 90) {
    return Support::no(str_cat("needs compute capability 9.0 (Hopper: TMA + wgmma, compiled for sm_90a); ",
                               to_string(config.device), " (", platform.cuda.name, ") is sm_",
                               platform.cuda.compute_capability));
  }
  // TMA moves 16-byte aligned rows: every row of every operand must be a multiple of 8 bf16.
  if (config.hidden_size % 8 != 0 || config.intermediate_size % 8 != 0) {
    return Support::no(
        str_cat("needs hidden_size and intermediate_size multiples of 8 (16-byte rows for TMA); "
                "got hidden_size ",
                config.hidden_size, ", intermediate_size ", config.intermediate_size));
  }
  return Support::yes();
}

#else

#if FUSEDMOE_CUTLASS_HEADERS_FOUND
constexpr std::string_view kNotBuilt =
    "built without sm_90a (add 90a to CMAKE_CUDA_ARCHITECTURES to build the CUTLASS Hopper kernel)";
#else
constexpr std::string_view kNotBuilt =
    "built without CUTLASS headers (run scripts/setup.sh or set FUSEDMOE_CUTLASS_DIR)";
#endif

Support supports(const MoeConfig&, const Platform&, ActivationFormat) {
  return Support::no(std::string(kNotBuilt));
}

#endif

}  // namespace

BackendInfo cuda_cutlass_grouped_backend() {
  BackendInfo info;
  info.id = std::string(kId);
  info.device_kind = DeviceKind::cuda;
  info.kind = ExpertsKind::modular;
  info.supports = supports;
#if FUSEDMOE_WITH_CUTLASS
  info.convert_weights = cuda_cutlass_grouped::convert_weights;
  info.make_experts = [](const MoeConfig& config) -> std::unique_ptr<Experts> {
    return std::make_unique<cuda_cutlass_grouped::CutlassGroupedExperts>(config);
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
