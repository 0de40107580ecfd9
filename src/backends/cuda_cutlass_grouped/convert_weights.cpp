// cuda_cutlass_grouped's one-time weight conversion: the canonical layout is already what the grouped GEMM
// reads (B operands K-major: w13[e] is [2I, H], w2[e] is [H, I], both row-major), so it is copied to the
// device.
#include "backends/cuda_common/grouped_pipeline.hpp"
#include "backends/cuda_cutlass_grouped/experts.hpp"

namespace fusedmoe::cuda_cutlass_grouped {

std::shared_ptr<const ExpertWeights> convert_weights(const Tensor& w13, const Tensor& w2,
                                                     const MoeConfig& config) {
  cuda::CanonicalDeviceWeights copied = cuda::copy_canonical_weights("cuda_cutlass_grouped", w13, w2, config);
  auto converted = std::make_shared<CutlassGroupedWeights>();
  converted->w13 = std::move(copied.w13);
  converted->w2 = std::move(copied.w2);
  converted->num_experts = config.num_local_experts();
  converted->hidden = config.hidden_size;
  converted->intermediate = config.intermediate_size;
  return converted;
}

}  // namespace fusedmoe::cuda_cutlass_grouped
