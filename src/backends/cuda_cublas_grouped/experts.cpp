// cuda_cublas_grouped's forward: the shared sort/gather/activation/reduce steps around two
// cublasGemmGroupedBatchedEx calls (one group per local expert with rows). The group sizes must be on the
// host, so each call reads the expert offsets back and waits for them: correct and simple, not capturable.
#include "backends/cuda_cublas_grouped/experts.hpp"

#include <cuda_runtime.h>

#include "backends/cuda_common/cuda_check.hpp"
#include "backends/cuda_common/grouped_pipeline.hpp"
#include "core/check.hpp"

// Throws fusedmoe::CudaError naming the call and cuBLAS's status.
#define FUSEDMOE_CUBLAS_CHECK(call)                                                                     \
  do {                                                                                                  \
    const cublasStatus_t fusedmoe_cublas_status_ = (call);                                              \
    if (fusedmoe_cublas_status_ != CUBLAS_STATUS_SUCCESS) {                                             \
      throw ::fusedmoe::CudaError(::fusedmoe::str_cat(                                                  \
          "[cuda_cublas_grouped] ", #call, " failed: ", cublasGetStatusString(fusedmoe_cublas_status_), \
          " (", static_cast<int>(fusedmoe_cublas_status_), ") at ", __FILE__, ":", __LINE__));          \
    }                                                                                                   \
  } while (0)

namespace fusedmoe::cuda_cublas_grouped {

namespace {

constexpr int kPointerArrays = 6;  // A, B, C of GEMM1, then of GEMM2

std::size_t pinned_bytes(std::int64_t experts) {
  return static_cast<std::size_t>(experts + 1) * sizeof(std::int64_t) +
         static_cast<std::size_t>(kPointerArrays * experts) * sizeof(void*);
}

}  // namespace

CublasGroupedExperts::CublasGroupedExperts(const MoeConfig& config) : config_(config) {
  const std::int64_t experts = config_.num_local_experts();
  cuda::DeviceGuard guard(config_.device.index);
  FUSEDMOE_CUBLAS_CHECK(cublasCreate(&handle_));
  try {
    FUSEDMOE_CUDA_CHECK(cudaMallocHost(&pinned_, pinned_bytes(experts)));
    FUSEDMOE_CUDA_CHECK(cudaEventCreateWithFlags(&pinned_free_, cudaEventDisableTiming));
  } catch (...) {
    if (pinned_ != nullptr) (void)cudaFreeHost(pinned_);
    cublasDestroy(handle_);
    throw;
  }
  for (GroupArrays* arrays : {&gemm1_, &gemm2_}) {
    const auto size = static_cast<std::size_t>(experts);
    arrays->transa.assign(size, CUBLAS_OP_T);
    arrays->transb.assign(size, CUBLAS_OP_N);
    for (std::vector<int>* values :
         {&arrays->m, &arrays->n, &arrays->k, &arrays->lda, &arrays->ldb, &arrays->ldc})
      values->assign(size, 0);
    arrays->group_size.assign(size, 1);
    arrays->alpha.assign(size, 1.0f);
    arrays->beta.assign(size, 0.0f);
  }
}

CublasGroupedExperts::~CublasGroupedExperts() {
  // Destructors never throw (no DeviceGuard): a failure here has nowhere to go.
  int previous = -1;
  const bool switched = cudaGetDevice(&previous) == cudaSuccess && previous != config_.device.index &&
                        cudaSetDevice(config_.device.index) == cudaSuccess;
  if (handle_ != nullptr) (void)cublasDestroy(handle_);
  if (pinned_free_ != nullptr) (void)cudaEventDestroy(pinned_free_);
  if (pinned_ != nullptr) (void)cudaFreeHost(pinned_);
  if (switched) (void)cudaSetDevice(previous);
}

std::size_t CublasGroupedExperts::workspace_bytes(const ExpertsProblem& problem) const {
  return cuda::grouped_buffers_bytes(problem) +
         WorkspaceArena::bytes_for(DType::uint8,
                                   static_cast<std::int64_t>(kPointerArrays * problem.num_local_experts *
                                                             static_cast<std::int64_t>(sizeof(void*))));
}

// cuBLAS is column-major. A row-major X [rows, cols] is the column-major X^T [cols, rows] with the same
// leading dimension cols. Each expert wants the row-major C [m, N] = A [m, K] . W^T with W [N, K] row-major;
// in column-major terms that is C^T [N, m] = W^T^T . A^T = op(W_cm) . A_cm, where W_cm is [K, N] (ld K), op =
// T, and A_cm is [K, m] (ld K), op = N. So: transa = T on the weight, transb = N on the rows, cuBLAS's (m, n,
// k) = (N, m_e, K), lda = ldb = K, ldc = N; C is written as C^T [N, m_e] column-major = C [m_e, N] row-major.
void CublasGroupedExperts::run_gemm(const GroupArrays& arrays, int groups, const void* const* a,
                                    const void* const* b, void* const* c) const {
  if (groups == 0) return;
#if CUBLAS_VERSION >= 120500
  FUSEDMOE_CUBLAS_CHECK(cublasGemmGroupedBatchedEx(
      handle_, arrays.transa.data(), arrays.transb.data(), arrays.m.data(), arrays.n.data(), arrays.k.data(),
      arrays.alpha.data(), a, CUDA_R_16BF, arrays.lda.data(), b, CUDA_R_16BF, arrays.ldb.data(),
      arrays.beta.data(), c, CUDA_R_16BF, arrays.ldc.data(), groups, arrays.group_size.data(),
      CUBLAS_COMPUTE_32F));
#else
  (void)arrays, (void)a, (void)b, (void)c;
  throw Unsupported(
      "[cuda_cublas_grouped] built against cuBLAS older than 12.5 (no cublasGemmGroupedBatchedEx)");
#endif
}

void CublasGroupedExperts::apply(const DispatchedTokens& dispatched, const ExpertWeights& weights,
                                 const TensorView& expert_out, WorkspaceArena& workspace,
                                 const ExecContext& context) {
  const auto* converted = dynamic_cast<const CublasGroupedWeights*>(&weights);
  FUSEDMOE_ASSERT(converted != nullptr,
                  "backend cuda_cublas_grouped was given weights converted by another backend");
  const cudaStream_t stream = cuda::stream_of(context);
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  FUSEDMOE_CUDA_CHECK(cudaStreamIsCapturing(stream, &capture));
  if (capture != cudaStreamCaptureStatusNone) {
    throw Unsupported(
        "[cuda_cublas_grouped] cannot run inside CUDA graph capture: cublasGemmGroupedBatchedEx takes the "
        "per-expert row counts on the host, so every call copies them back and synchronises the stream; "
        "use cuda_fused or cuda_cutlass_grouped, which are capturable");
  }
  const TensorView& hidden = dispatched.hidden;
  const std::int64_t num_tokens = hidden.size(0);
  if (num_tokens == 0) return;
  FUSEDMOE_ASSERT(hidden.dtype() == DType::bf16 && expert_out.dtype() == DType::bf16 &&
                  hidden.device().is_cuda());
  const int top_k = static_cast<int>(dispatched.topk_ids.size(1));
  const int experts = static_cast<int>(converted->num_experts);
  const std::int64_t hidden_size = converted->hidden, intermediate = converted->intermediate;
  FUSEDMOE_CHECK(2 * intermediate <= INT32_MAX && hidden_size <= INT32_MAX,
                 "[cuda_cublas_grouped] sizes must fit cuBLAS's int: hidden_size ", hidden_size,
                 ", 2 * intermediate_size ", 2 * intermediate);

  cuda::DeviceGuard guard(hidden.device().index);
  const cuda::GroupedBuffers buffers =
      cuda::take_grouped_buffers(workspace, num_tokens, top_k, experts, hidden_size, intermediate);
  auto** device_pointers =
      workspace
          .take(DType::uint8, {static_cast<std::int64_t>(kPointerArrays * experts *
                                                         static_cast<std::int64_t>(sizeof(void*)))})
          .data_as<void*>();
  FUSEDMOE_CUBLAS_CHECK(cublasSetStream(handle_, stream));

  cuda::group_rows_by_expert(dispatched, buffers, static_cast<int>(config_.num_experts), experts,
                             context.stream);
  auto* offsets = static_cast<std::int64_t*>(pinned_);
  FUSEDMOE_CUDA_CHECK(cudaEventSynchronize(pinned_free_));  // the previous call's copy out of pinned_ is done
  FUSEDMOE_CUDA_CHECK(cudaMemcpyAsync(offsets, buffers.offsets,
                                      static_cast<std::size_t>(experts + 1) * sizeof(std::int64_t),
                                      cudaMemcpyDeviceToHost, stream));
  FUSEDMOE_CUDA_CHECK(cudaStreamSynchronize(stream));  // the one wait: group sizes go to cuBLAS on the host

  // Groups = local experts with rows, in expert order; pointers into the sorted rows and each expert's
  // weights.
  void** host_pointers = reinterpret_cast<void**>(offsets + experts + 1);
  const auto* w13 = static_cast<const std::uint16_t*>(converted->w13.data());
  const auto* w2 = static_cast<const std::uint16_t*>(converted->w2.data());
  auto* a_sorted = static_cast<std::uint16_t*>(buffers.a_sorted);
  auto* c1 = static_cast<std::uint16_t*>(buffers.c1);
  auto* inter = static_cast<std::uint16_t*>(buffers.intermediate);
  auto* c2 = static_cast<std::uint16_t*>(buffers.c2);
  int groups = 0;
  for (int expert = 0; expert < experts; ++expert) {
    const std::int64_t begin = offsets[expert], rows = offsets[expert + 1] - begin;
    if (rows == 0) continue;
    // GEMM1: c1 [rows, 2I] = a_sorted [rows, H] . w13[e]^T.
    gemm1_.m[groups] = static_cast<int>(2 * intermediate);
    gemm1_.n[groups] = static_cast<int>(rows);
    gemm1_.k[groups] = static_cast<int>(hidden_size);
    gemm1_.lda[groups] = gemm1_.ldb[groups] = static_cast<int>(hidden_size);
    gemm1_.ldc[groups] = static_cast<int>(2 * intermediate);
    host_pointers[0 * experts + groups] =
        const_cast<std::uint16_t*>(w13 + expert * 2 * intermediate * hidden_size);
    host_pointers[1 * experts + groups] = a_sorted + begin * hidden_size;
    host_pointers[2 * experts + groups] = c1 + begin * 2 * intermediate;
    // GEMM2: c2 [rows, H] = intermediate [rows, I] . w2[e]^T.
    gemm2_.m[groups] = static_cast<int>(hidden_size);
    gemm2_.n[groups] = static_cast<int>(rows);
    gemm2_.k[groups] = static_cast<int>(intermediate);
    gemm2_.lda[groups] = gemm2_.ldb[groups] = static_cast<int>(intermediate);
    gemm2_.ldc[groups] = static_cast<int>(hidden_size);
    host_pointers[3 * experts + groups] =
        const_cast<std::uint16_t*>(w2 + expert * hidden_size * intermediate);
    host_pointers[4 * experts + groups] = inter + begin * intermediate;
    host_pointers[5 * experts + groups] = c2 + begin * hidden_size;
    ++groups;
  }
  FUSEDMOE_CUDA_CHECK(cudaMemcpyAsync(device_pointers, host_pointers,
                                      static_cast<std::size_t>(kPointerArrays * experts) * sizeof(void*),
                                      cudaMemcpyHostToDevice, stream));
  FUSEDMOE_CUDA_CHECK(cudaEventRecord(pinned_free_, stream));
  auto array = [&](int index) { return device_pointers + static_cast<std::ptrdiff_t>(index) * experts; };

  run_gemm(gemm1_, groups, array(0), array(1), array(2));
  cuda::apply_gated_activation(buffers, intermediate, experts, config_.activation, context.stream);
  run_gemm(gemm2_, groups, array(3), array(4), array(5));
  cuda::reduce_to_tokens(dispatched, buffers, hidden_size, expert_out, context.stream);
}

}  // namespace fusedmoe::cuda_cublas_grouped
