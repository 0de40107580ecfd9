// cuda_cublas_grouped: the shared sort/gather/activation/reduce steps around two cublasGemmGroupedBatchedEx
// calls. Not capturable in a CUDA graph (it reads the group sizes back each call); README.md says why.
#include <cublas_v2.h>

#include "backends/backends.hpp"
#include "backends/cuda_common/grouped_pipeline.hpp"
#include "backends/cuda_cublas_grouped/experts.hpp"
#include "core/check.hpp"

namespace fusedmoe {

namespace cuda_cublas_grouped {

namespace {

Support supports(const MoeConfig& config, const Platform& platform, ActivationFormat format) {
  Support common = cuda::grouped_pipeline_supports(config, platform, format);
  if (!common.ok) return common;
  if (CUBLAS_VERSION < 120500) {
    return Support::no(
        str_cat("needs cuBLAS 12.5 or newer (cublasGemmGroupedBatchedEx); built against ", CUBLAS_VERSION));
  }
  // bf16 tensor-core GEMMs with fp32 accumulation.
  if (platform.cuda.compute_capability < 80) {
    return Support::no(str_cat("needs compute capability 8.0 or newer (bf16 tensor cores); ",
                               to_string(config.device), " (", platform.cuda.name, ") is sm_",
                               platform.cuda.compute_capability));
  }
  // Any H and I: cuBLAS takes any leading dimension, and the surrounding kernels handle odd rows.
  return Support::yes();
}

}  // namespace

}  // namespace cuda_cublas_grouped

BackendInfo cuda_cublas_grouped_backend() {
  BackendInfo info;
  info.id = "cuda_cublas_grouped";
  info.device_kind = DeviceKind::cuda;
  info.kind = ExpertsKind::modular;
  info.supports = cuda_cublas_grouped::supports;
  info.convert_weights = cuda_cublas_grouped::convert_weights;
  info.make_experts = [](const MoeConfig& config) -> std::unique_ptr<Experts> {
    return std::make_unique<cuda_cublas_grouped::CublasGroupedExperts>(config);
  };
  return info;
}

}  // namespace fusedmoe
