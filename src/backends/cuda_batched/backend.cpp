// cuda_batched: the batched-format CUDA Experts (by_finalize) on cuda_fused's weights and grouped GEMMs.
#include "backends/backends.hpp"
#include "backends/cuda_batched/experts.hpp"
#include "backends/cuda_fused/experts.hpp"

namespace fusedmoe {

namespace cuda_batched {

Support supports(const MoeConfig& config, const Platform& platform, ActivationFormat format) {
  // Device, compute capability, dtypes and shared memory: the questions of cuda_fused, whose kernels and
  // converted weights run here (asked for the standard format, which is the one it would accept). Any H and
  // I.
  if (Support fused = cuda_fused::supports(config, platform, ActivationFormat::standard); !fused)
    return fused;
  // Activations: SiLU and GELU (the only two), fused into GEMM1's epilogue as in cuda_fused.
  if (format != ActivationFormat::batched) {
    return Support::no("consumes the batched format; the dispatch delivers " +
                       std::string(to_string(format)));
  }
  return Support::yes();
}

}  // namespace cuda_batched

BackendInfo cuda_batched_backend() {
  BackendInfo info;
  info.id = "cuda_batched";
  info.device_kind = DeviceKind::cuda;
  info.kind = ExpertsKind::modular;
  info.supports = cuda_batched::supports;
  info.convert_weights = cuda_fused::convert_weights;  // the same layout: the GEMMs are cuda_fused's
  info.make_experts = [](const MoeConfig& config) {
    return std::make_unique<cuda_batched::CudaBatchedExperts>(config);
  };
  return info;
}

}  // namespace fusedmoe
