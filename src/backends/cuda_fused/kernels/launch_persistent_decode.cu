// Host side of the persistent decode path: one launch of one block per SM (as many as are resident at
// once, so that every block's waits end), the kernel instantiated for 1, 2, 4 or 8 token fragments per
// expert by the batch's pair count.
#include <algorithm>

#include "backends/cuda_common/cuda_check.hpp"
#include "backends/cuda_common/tensor_map.hpp"
#include "backends/cuda_fused/kernels/launch.hpp"
#include "backends/cuda_fused/kernels/persistent_decode.cuh"
#include "core/check.hpp"

namespace fusedmoe::cuda_fused {

namespace {

// Token fragments (8 pairs each) one expert may need: every pair of the batch may name it.
int fragments_for(std::int64_t pairs) {
  return pairs <= 8 ? 1 : pairs <= 16 ? 2 : pairs <= 32 ? 4 : 8;
}

std::int64_t gemm2_groups(std::int64_t hidden) {
  return (hidden + kPersistentBoxRows - 1) / kPersistentBoxRows;
}

template <int Frags>
void launch(const CUtensorMap& w13_map, const CUtensorMap& w2_map, const PersistentParams& params,
            int num_sms, cudaStream_t stream, bool dependent) {
  const auto kernel = persistent_decode_kernel<Frags>;
  cuda::allow_dynamic_shared_memory(reinterpret_cast<const void*>(kernel), kPersistentSharedBytes);
  // Every block must be resident at once (the GEMM2 warps wait for GEMM1 units of other blocks), and the
  // scratch holds partial sums for num_sms blocks.
  const std::int64_t blocks =
      std::min<std::int64_t>(num_sms, cuda::resident_blocks(reinterpret_cast<const void*>(kernel),
                                                            kPersistentWarps * 32, kPersistentSharedBytes));
  cuda::launch_dependent(kernel, dim3(static_cast<unsigned>(blocks)), dim3(kPersistentWarps * 32),
                         kPersistentSharedBytes, stream, dependent, w13_map, w2_map, params);
}

}  // namespace

bool persistent_path_available(int compute_capability, std::size_t shared_memory_optin) {
#if FUSEDMOE_CUDA_FUSED_SM90A
  return compute_capability == 90 && kPersistentSharedBytes <= shared_memory_optin;
#else
  (void)compute_capability;
  (void)shared_memory_optin;
  return false;
#endif
}

bool persistent_path_fits(std::int64_t num_tokens, int top_k, int compute_capability,
                          std::size_t shared_memory_optin) {
  return num_tokens * top_k <= kPersistentMaxPairs &&
         persistent_path_available(compute_capability, shared_memory_optin);
}

std::int64_t persistent_counter_words(std::int64_t hidden, std::int64_t intermediate_padded) {
  return persistent_counter_count(2 * intermediate_padded / kPersistentBoxRows, gemm2_groups(hidden));
}

std::int64_t persistent_scratch_floats(std::int64_t num_tokens, int top_k, std::int64_t hidden, int num_sms) {
  const std::int64_t pairs = std::min<std::int64_t>(num_tokens * top_k, kPersistentMaxPairs);
  const std::int64_t partials = std::int64_t{num_sms} * kPersistentWarps * 2 * fragments_for(pairs) * 256;
  return 2 * partials + pairs * gemm2_groups(hidden) * kPersistentBoxRows;
}

void launch_persistent_experts(const PersistentLaunch& args, StreamHandle stream_handle) {
  const auto stream = static_cast<cudaStream_t>(stream_handle);
  const std::int64_t pairs = args.num_tokens * args.top_k;
  FUSEDMOE_CHECK(pairs >= 1 && pairs <= kPersistentMaxPairs, "[cuda_fused] the persistent path takes 1 to ",
                 kPersistentMaxPairs, " (token, slot) pairs per call, not ", pairs);
  int device = 0;
  FUSEDMOE_CUDA_CHECK(cudaGetDevice(&device));
  const cuda::DeviceAttributes& attributes = cuda::device_attributes(device);
  FUSEDMOE_CHECK(
      persistent_path_available(attributes.compute_capability, attributes.shared_memory_per_block_optin),
      "[cuda_fused] the persistent path needs compute capability 9.0 and sm_90a code; ", attributes.name,
      " is sm_", attributes.compute_capability);
  const int frags = fragments_for(pairs);
  const std::int64_t groups1 = 2 * args.intermediate_padded / kPersistentBoxRows;
  const std::int64_t groups2 = gemm2_groups(args.hidden_size);
  const std::int64_t partials = std::int64_t{attributes.num_sms} * kPersistentWarps * 2 * frags * 256;
  unsigned* counters = args.counters;
  const PersistentParams params{
      .topk_ids = args.topk_ids,
      .expert_map = args.expert_map,
      .topk_weights = args.topk_weights,
      .num_experts = args.num_experts,
      .num_local_experts = static_cast<int>(args.num_local_experts),
      .num_tokens = static_cast<int>(args.num_tokens),
      .top_k = args.top_k,
      .hidden = static_cast<const bf16*>(args.hidden),
      .lda = args.lda,
      .a_columns = args.a_columns,
      .groups1 = static_cast<int>(groups1),
      .panels1 = static_cast<int>(args.hidden_padded_k / 64),
      .groups2 = static_cast<int>(groups2),
      .panels2 = static_cast<int>(args.intermediate_padded / 64),
      .intermediate = static_cast<bf16*>(args.intermediate),
      .ldi = args.intermediate_padded,
      .partials1 = args.scratch,
      .partials2 = args.scratch + partials,
      .pair_rows = args.scratch + 2 * partials,
      .out = static_cast<bf16*>(args.out),
      .hidden_size = args.hidden_size,
      .activation = args.activation,
      .counters = PersistentCounters{
          .gemm1_units = counters,
          .gemm2_units = counters + kPersistentMaxPairs * groups1,
          .expert_done = counters + kPersistentMaxPairs * (groups1 + groups2),
          .columns_done = counters + kPersistentMaxPairs * (groups1 + groups2 + 1),
          .blocks_exited = counters + kPersistentMaxPairs * (groups1 + groups2 + 1) + groups2}};
  // Boxes of 32 rows x 64 of one k-panel of one expert's matrix.
  const CUtensorMap w13_map =
      cuda::bf16_panels_tensor_map(args.w13, 2 * args.intermediate_padded, args.hidden_padded_k,
                                   args.num_local_experts, kPersistentBoxRows);
  const CUtensorMap w2_map = cuda::bf16_panels_tensor_map(
      args.w2, args.hidden_padded_n, args.intermediate_padded, args.num_local_experts, kPersistentBoxRows);
  switch (frags) {
    case 1:
      launch<1>(w13_map, w2_map, params, attributes.num_sms, stream, args.dependent_launch);
      break;
    case 2:
      launch<2>(w13_map, w2_map, params, attributes.num_sms, stream, args.dependent_launch);
      break;
    case 4:
      launch<4>(w13_map, w2_map, params, attributes.num_sms, stream, args.dependent_launch);
      break;
    default:
      launch<8>(w13_map, w2_map, params, attributes.num_sms, stream, args.dependent_launch);
      break;
  }
}

}  // namespace fusedmoe::cuda_fused
