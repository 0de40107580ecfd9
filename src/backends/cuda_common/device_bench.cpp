#include "backends/cuda_common/device_bench.hpp"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "backends/cuda_common/cuda_check.hpp"
#include "core/check.hpp"
#include "core/env.hpp"

namespace fusedmoe::cuda {

namespace {

#define FUSEDMOE_CUBLAS_CHECK(call)                                                                  \
  do {                                                                                               \
    const cublasStatus_t status_ = (call);                                                           \
    if (status_ != CUBLAS_STATUS_SUCCESS) {                                                          \
      throw CudaError(str_cat("[cublas] ", #call, " failed: ", cublasGetStatusString(status_), " (", \
                              static_cast<int>(status_), ") at ", __FILE__, ":", __LINE__));         \
    }                                                                                                \
  } while (0)

class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    FUSEDMOE_CUDA_CHECK(cudaGetDevice(&previous_));
    FUSEDMOE_CUDA_CHECK(cudaSetDevice(device));
  }
  ~DeviceScope() { cudaSetDevice(previous_); }

 private:
  int previous_ = 0;
};

// Median of several timed runs of `body` between events, after `warm_up` untimed ones.
template <class Body>
double median_ms(cudaStream_t stream, int runs, Body&& body, int warm_up = 1) {
  cudaEvent_t start, stop;
  FUSEDMOE_CUDA_CHECK(cudaEventCreate(&start));
  FUSEDMOE_CUDA_CHECK(cudaEventCreate(&stop));
  for (int run = 0; run < warm_up; ++run) body();
  std::vector<double> times;
  for (int run = 0; run < runs; ++run) {
    FUSEDMOE_CUDA_CHECK(cudaEventRecord(start, stream));
    body();
    FUSEDMOE_CUDA_CHECK(cudaEventRecord(stop, stream));
    FUSEDMOE_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0.0f;
    FUSEDMOE_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    times.push_back(ms);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

bool l2_flush_writes() {
  return env_switch("FUSEDMOE_BENCH_FLUSH", "read", "write");
}

bool gemm_ceiling_on_zeros() {
  return env_switch("FUSEDMOE_BENCH_GEMM_OPERANDS", "random", "zeros");
}

const char* l2_flush_description() {
  return l2_flush_writes() ? "L2 flushed before each run (zeroed: the run also writes back dirty lines)"
                           : "L2 flushed before each run (read: no dirty lines left)";
}

std::vector<double> time_on_device(int device, int repeats, bool use_graph, bool& graph_used,
                                   const std::function<void(StreamHandle)>& body) {
  // FUSEDMOE_BENCH_FLUSH=write: zero the buffer instead (the usual flush, which leaves dirty lines that
  // the timed run writes back), for comparison with numbers taken that way. Read before anything is made.
  const bool write_flush = l2_flush_writes();
  DeviceScope scope(device);
  cudaStream_t stream;
  FUSEDMOE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  int l2_bytes = 0;
  FUSEDMOE_CUDA_CHECK(cudaDeviceGetAttribute(&l2_bytes, cudaDevAttrL2CacheSize, device));
  const std::size_t flush_bytes = std::max<std::size_t>(static_cast<std::size_t>(l2_bytes) * 4, 256u << 20);
  void* flush = nullptr;
  FUSEDMOE_CUDA_CHECK(cudaMalloc(&flush, flush_bytes + 16));
  void* sink = static_cast<char*>(flush) + flush_bytes;
  FUSEDMOE_CUDA_CHECK(cudaMemsetAsync(flush, 0, flush_bytes, stream));
  evict_l2_by_reading(flush, flush_bytes, sink, stream);  // the memset's dirty lines written back, untimed
  body(stream);  // warm-up (also sizes any workspace outside the capture)
  FUSEDMOE_CUDA_CHECK(cudaStreamSynchronize(stream));

  cudaGraphExec_t executable = nullptr;
  graph_used = false;
  if (use_graph) {
    cudaGraph_t graph = nullptr;
    FUSEDMOE_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    bool captured = true;
    try {
      body(stream);
    } catch (const Error&) {
      captured = false;
    }
    const cudaError_t end = cudaStreamEndCapture(stream, &graph);
    if (captured && end == cudaSuccess && graph != nullptr &&
        cudaGraphInstantiate(&executable, graph, 0) == cudaSuccess) {
      graph_used = true;
    }
    if (graph != nullptr) cudaGraphDestroy(graph);
    cudaGetLastError();  // clear a failed capture's error state
  }
  cudaEvent_t start, stop;
  FUSEDMOE_CUDA_CHECK(cudaEventCreate(&start));
  FUSEDMOE_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<double> times;
  for (int repeat = 0; repeat < repeats; ++repeat) {
    if (write_flush) {
      FUSEDMOE_CUDA_CHECK(cudaMemsetAsync(flush, repeat & 0xff, flush_bytes, stream));
    } else {
      evict_l2_by_reading(flush, flush_bytes, sink, stream);
    }
    FUSEDMOE_CUDA_CHECK(cudaEventRecord(start, stream));
    if (graph_used) {
      FUSEDMOE_CUDA_CHECK(cudaGraphLaunch(executable, stream));
    } else {
      body(stream);
    }
    FUSEDMOE_CUDA_CHECK(cudaEventRecord(stop, stream));
    FUSEDMOE_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0.0f;
    FUSEDMOE_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    times.push_back(ms);
  }
  if (executable != nullptr) cudaGraphExecDestroy(executable);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaFree(flush);
  cudaStreamDestroy(stream);
  return times;
}

DeviceCeilings measure_device_ceilings(int device) {
  DeviceScope scope(device);
  DeviceCeilings ceilings;
  cudaStream_t stream;
  FUSEDMOE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  {
    const std::size_t bytes = std::size_t{1} << 30;
    void *a = nullptr, *b = nullptr;
    FUSEDMOE_CUDA_CHECK(cudaMalloc(&a, bytes));
    FUSEDMOE_CUDA_CHECK(cudaMalloc(&b, bytes));
    FUSEDMOE_CUDA_CHECK(cudaMemsetAsync(a, 1, bytes, stream));
    const double ms = median_ms(stream, 10, [&] {
      FUSEDMOE_CUDA_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, stream));
    });
    ceilings.copy_tb_per_s = 2.0 * static_cast<double>(bytes) / (ms * 1e-3) / 1e12;
    cudaFree(a);
    cudaFree(b);
  }
  {
    constexpr int n = 8192;
    void *a = nullptr, *b = nullptr, *c = nullptr;
    const std::size_t bytes = std::size_t{n} * n * 2;
    FUSEDMOE_CUDA_CHECK(cudaMalloc(&a, bytes));
    FUSEDMOE_CUDA_CHECK(cudaMalloc(&b, bytes));
    FUSEDMOE_CUDA_CHECK(cudaMalloc(&c, bytes));
    if (gemm_ceiling_on_zeros()) {
      FUSEDMOE_CUDA_CHECK(cudaMemsetAsync(a, 0, bytes, stream));
      FUSEDMOE_CUDA_CHECK(cudaMemsetAsync(b, 0, bytes, stream));
    } else {
      fill_uniform_bf16(a, std::int64_t{n} * n, 1u, stream);
      fill_uniform_bf16(b, std::int64_t{n} * n, 2u, stream);
    }
    cublasHandle_t handle;
    FUSEDMOE_CUBLAS_CHECK(cublasCreate(&handle));
    FUSEDMOE_CUBLAS_CHECK(cublasSetStream(handle, stream));
    const float alpha = 1.0f, beta = 0.0f;
    const double ms = median_ms(
        stream, 20,
        [&] {
          FUSEDMOE_CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a,
                                             CUDA_R_16BF, n, b, CUDA_R_16BF, n, &beta, c, CUDA_R_16BF, n,
                                             CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        },
        5);
    ceilings.bf16_gemm_tflop_per_s = 2.0 * n * static_cast<double>(n) * n / (ms * 1e-3) / 1e12;
    cublasDestroy(handle);
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
  }
  cudaStreamDestroy(stream);
  return ceilings;
}

}  // namespace fusedmoe::cuda
