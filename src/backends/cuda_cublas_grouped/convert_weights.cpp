// cuda_cublas_grouped's one-time weight conversion: cuBLAS reads the canonical row-major w13[e] [2I, H] and
// w2[e] [H, I] directly (as transposed column-major operands), so they are copied to the device as they are.
#include "backends/cuda_common/grouped_pipeline.hpp"
#include "backends/cuda_cublas_grouped/experts.hpp"

namespace fusedmoe::cuda_cublas_grouped {

std::shared_ptr<const ExpertWeights> convert_weights(const Tensor& w13, const Tensor& w2,
                                                     const MoeConfig& config) {
  cuda::CanonicalDeviceWeights copied = cuda::copy_canonical_weights("cuda_cublas_grouped", w13, w2, config);
  auto converted = std::make_shared<CublasGroupedWeights>();
  converted->w13 = std::move(copied.w13);
  converted->w2 = std::move(copied.w2);
  converted->num_experts = config.num_local_experts();
  converted->hidden = config.hidden_size;
  converted->intermediate = config.intermediate_size;
  return converted;
}

}  // namespace fusedmoe::cuda_cublas_grouped
