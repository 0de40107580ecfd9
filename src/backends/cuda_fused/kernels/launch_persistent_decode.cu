// Host side of the persistent decode path: one launch of one block per SM (as many as are resident at
// once, so that every block's waits end), the kernel instantiated for 1, 2, 4 or 8 token fragments per
// expert by the batch's pair count.
#include <algorithm>
#include <string>
#include <vector>

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

struct ShapeInfo {
  int box_rows, warps;
};
constexpr ShapeInfo kShapes[] = {{32, 8}, {64, 8}, {64, 4}, {128, 4}, {128, 2}};  // PersistentShapeId order
constexpr int kShapeCount = sizeof(kShapes) / sizeof(kShapes[0]);
constexpr int kLargestRowsTimesWarps = 512;
#if FUSEDMOE_CUDA_FUSED_SM90A
constexpr bool kBuiltForSm90a = true;
#else
constexpr bool kBuiltForSm90a = false;
#endif
// Every shape's GEMM2 boxes stay inside w2's converted rows (H rounded up to kWeightNPadding).
static_assert(kWeightNPadding % 128 == 0, "w2's padded rows must hold whole 128-row boxes");

// Whether the shape's accumulators fit in registers for this many fragments (PersistentShape's assert).
bool shape_fits(ShapeInfo shape, int frags) {
  return shape.box_rows / 16 * frags * 4 <= 64;
}

// A cooperative launch: every block is resident at once even when other kernels hold SMs (the GEMM2 warps
// wait for GEMM1 units of other blocks; an ordinary launch that got only part of the GPU would wait forever).
// Not a dependent launch: co-residency is what the waits need.
template <class Shape>
void launch(const CUtensorMap& w13_map, const CUtensorMap& w2_map, const PersistentParams& params,
            int num_sms, cudaStream_t stream) {
  const auto kernel = persistent_decode_kernel<Shape>;
  cuda::allow_dynamic_shared_memory(reinterpret_cast<const void*>(kernel), Shape::kSharedBytes);
  // The scratch holds partial sums for num_sms blocks.
  const std::int64_t blocks = std::min<std::int64_t>(
      num_sms,
      cuda::resident_blocks(reinterpret_cast<const void*>(kernel), Shape::kWarps * 32, Shape::kSharedBytes));
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeCooperative;
  attribute.val.cooperative = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(static_cast<unsigned>(blocks));
  config.blockDim = dim3(Shape::kWarps * 32);
  config.dynamicSmemBytes = Shape::kSharedBytes;
  config.stream = stream;
  config.attrs = &attribute;
  config.numAttrs = 1;
  const cudaError_t status = cudaLaunchKernelEx(&config, kernel, w13_map, w2_map, params);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    cuda::throw_cuda_error(status, "cudaLaunchKernelEx (cooperative)", __FILE__, __LINE__);
  }
}

template <int Frags, int BoxRows, int Warps>
void launch_if(int box_rows, int warps, bool& launched, const CUtensorMap& w13_map, const CUtensorMap& w2_map,
               const PersistentParams& params, int num_sms, cudaStream_t stream) {
  if constexpr (BoxRows / 16 * Frags * 4 <= 64) {
    if (!launched && box_rows == BoxRows && warps == Warps) {
      launch<PersistentShape<Frags, BoxRows, Warps>>(w13_map, w2_map, params, num_sms, stream);
      launched = true;
    }
  }
}

template <int Frags>
bool launch_frags(ShapeInfo shape, const CUtensorMap& w13_map, const CUtensorMap& w2_map,
                  const PersistentParams& params, int num_sms, cudaStream_t stream) {
  bool launched = false;
  const int rows = shape.box_rows, warps = shape.warps;
  launch_if<Frags, 32, 8>(rows, warps, launched, w13_map, w2_map, params, num_sms, stream);
  launch_if<Frags, 64, 8>(rows, warps, launched, w13_map, w2_map, params, num_sms, stream);
  launch_if<Frags, 64, 4>(rows, warps, launched, w13_map, w2_map, params, num_sms, stream);
  launch_if<Frags, 128, 4>(rows, warps, launched, w13_map, w2_map, params, num_sms, stream);
  launch_if<Frags, 128, 2>(rows, warps, launched, w13_map, w2_map, params, num_sms, stream);
  return launched;
}

}  // namespace

std::vector<std::string> persistent_shape_names() {
  std::vector<std::string> names;
  for (const ShapeInfo& shape : kShapes) names.push_back(str_cat(shape.box_rows, "x", shape.warps));
  return names;
}

bool persistent_path_available(int compute_capability, std::size_t shared_memory_optin) {
#if FUSEDMOE_CUDA_FUSED_SM90A
  return compute_capability == 90 &&
         static_cast<std::size_t>(PersistentShape<1, 32, 8>::kSharedBytes) <= shared_memory_optin;
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

// Counters for the smallest box (the most units); larger boxes use a prefix of each array.
std::int64_t persistent_counter_words(std::int64_t hidden, std::int64_t intermediate_padded) {
  return persistent_counter_count(2 * intermediate_padded / kPersistentMinBoxRows,
                                  (hidden + kPersistentMinBoxRows - 1) / kPersistentMinBoxRows);
}

namespace {
// fp32 words of one phase's partial sums: two slots of every warp of num_sms blocks, for any shape.
std::int64_t partial_floats(int frags, int num_sms) {
  return std::int64_t{num_sms} * kLargestRowsTimesWarps * frags * 8 * 2;
}
}  // namespace

std::int64_t persistent_scratch_floats(std::int64_t num_tokens, int top_k, std::int64_t hidden, int num_sms) {
  const std::int64_t pairs = std::min<std::int64_t>(num_tokens * top_k, kPersistentMaxPairs);
  const std::int64_t columns = (hidden + 127) / 128 * 128;  // every box's columns, for any shape
  return 2 * partial_floats(fragments_for(pairs), num_sms) + pairs * columns;
}

void launch_persistent_experts(const PersistentLaunch& args, StreamHandle stream_handle) {
  const auto stream = static_cast<cudaStream_t>(stream_handle);
  const std::int64_t pairs = args.batch.num_tokens * args.batch.top_k;
  FUSEDMOE_CHECK(pairs >= 1 && pairs <= kPersistentMaxPairs, "[cuda_fused] the persistent path takes 1 to ",
                 kPersistentMaxPairs, " (token, slot) pairs per call, not ", pairs);
  int device = 0;
  FUSEDMOE_CUDA_CHECK(cudaGetDevice(&device));
  const cuda::DeviceAttributes& attributes = cuda::device_attributes(device);
  FUSEDMOE_CHECK(
      persistent_path_available(attributes.compute_capability, attributes.shared_memory_per_block_optin),
      "[cuda_fused] the persistent path needs compute capability 9.0, a build with sm_90a code (this build ",
      kBuiltForSm90a ? "has it" : "has none", ") and ", PersistentShape<1, 32, 8>::kSharedBytes,
      " bytes of shared memory per block; ", attributes.name, " is sm_", attributes.compute_capability,
      " with ", attributes.shared_memory_per_block_optin);
  const int frags = fragments_for(pairs);
  FUSEDMOE_CHECK(args.shape >= 0 && args.shape < kShapeCount, "[cuda_fused] no persistent shape ",
                 args.shape);
  // The requested shape where its accumulators fit this many fragments, else the smallest box.
  const ShapeInfo shape = shape_fits(kShapes[args.shape], frags) ? kShapes[args.shape] : kShapes[0];
  const std::int64_t groups1 = 2 * args.batch.intermediate_padded / shape.box_rows;
  const std::int64_t groups2 = (args.batch.hidden_size + shape.box_rows - 1) / shape.box_rows;
  const std::int64_t counter_groups1 = 2 * args.batch.intermediate_padded / kPersistentMinBoxRows;
  const std::int64_t counter_groups2 =
      (args.batch.hidden_size + kPersistentMinBoxRows - 1) / kPersistentMinBoxRows;
  const std::int64_t partials = partial_floats(frags, attributes.num_sms);
  unsigned* counters = args.counters;
  const PersistentParams params{
      .topk_ids = args.batch.topk_ids,
      .expert_map = args.batch.expert_map,
      .topk_weights = args.batch.topk_weights,
      .num_experts = args.batch.num_experts,
      .num_local_experts = static_cast<int>(args.batch.num_local_experts),
      .num_tokens = static_cast<int>(args.batch.num_tokens),
      .top_k = args.batch.top_k,
      .hidden = static_cast<const bf16*>(args.batch.hidden),
      .lda = args.batch.lda,
      .a_columns = args.batch.a_columns,
      .groups1 = static_cast<int>(groups1),
      .panels1 = static_cast<int>(args.batch.hidden_padded_k / 64),
      .groups2 = static_cast<int>(groups2),
      .panels2 = static_cast<int>(args.batch.intermediate_padded / 64),
      .intermediate = static_cast<bf16*>(args.batch.intermediate),
      .ldi = args.batch.intermediate_padded,
      .partials1 = args.scratch,
      .partials2 = args.scratch + partials,
      .pair_rows = args.scratch + 2 * partials,
      .out = static_cast<bf16*>(args.batch.out),
      .hidden_size = args.batch.hidden_size,
      .activation = args.batch.activation,
      .lookahead = args.lookahead > 0 ? args.lookahead : 1 << 20,
      .counters = PersistentCounters{
          .gemm1_units = counters,
          .gemm2_units = counters + kPersistentMaxPairs * counter_groups1,
          .expert_done = counters + kPersistentMaxPairs * (counter_groups1 + counter_groups2),
          .columns_done = counters + kPersistentMaxPairs * (counter_groups1 + counter_groups2 + 1),
          .blocks_exited =
              counters + kPersistentMaxPairs * (counter_groups1 + counter_groups2 + 1) + counter_groups2}};
  // Boxes of box_rows rows x 64 of one k-panel of one expert's matrix.
  const CUtensorMap w13_map =
      cuda::bf16_panels_tensor_map(args.batch.w13, 2 * args.batch.intermediate_padded,
                                   args.batch.hidden_padded_k, args.batch.num_local_experts, shape.box_rows);
  const CUtensorMap w2_map =
      cuda::bf16_panels_tensor_map(args.batch.w2, args.batch.hidden_padded_n, args.batch.intermediate_padded,
                                   args.batch.num_local_experts, shape.box_rows);
  bool launched = false;
  const int sms = attributes.num_sms;
  switch (frags) {
    case 1:
      launched = launch_frags<1>(shape, w13_map, w2_map, params, sms, stream);
      break;
    case 2:
      launched = launch_frags<2>(shape, w13_map, w2_map, params, sms, stream);
      break;
    case 4:
      launched = launch_frags<4>(shape, w13_map, w2_map, params, sms, stream);
      break;
    default:
      launched = launch_frags<8>(shape, w13_map, w2_map, params, sms, stream);
      break;
  }
  FUSEDMOE_CHECK(launched, "[cuda_fused] no persistent kernel for ", frags, " fragments and boxes of ",
                 shape.box_rows, " rows x ", shape.warps, " warps");
}

}  // namespace fusedmoe::cuda_fused
