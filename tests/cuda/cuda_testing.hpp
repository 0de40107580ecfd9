// GPU test helpers: skip (visibly) without a usable device, move tensors between host and device,
// poison device outputs with NaN.
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>
#include <cstdint>

#include <cstdlib>
#include <optional>
#include <string>

#include "testing/moe_case.hpp"
#include "testing/scoped_env.hpp"

namespace fusedmoe::testing {

inline const Device kGpu = Device::cuda(0);

// Why CUDA tests cannot run here ("" when they can).
inline std::string cuda_unavailable_reason() {
  const Platform platform = Platform::detect(kGpu);
  return platform.cuda.available ? std::string() : "no CUDA device: " + platform.cuda.reason;
}

// Skips the calling test, with the probe's reason, when there is no usable CUDA device.
#define FUSEDMOE_REQUIRE_CUDA()                                                          \
  do {                                                                                   \
    const std::string fusedmoe_reason_ = ::fusedmoe::testing::cuda_unavailable_reason(); \
    if (!fusedmoe_reason_.empty()) GTEST_SKIP() << fusedmoe_reason_;                     \
  } while (0)

// Skips the calling test when `backend` cannot run `config` here, printing its reason.
#define FUSEDMOE_REQUIRE_BACKEND(backend, config)                                                \
  do {                                                                                           \
    const ::fusedmoe::Support fusedmoe_support_ = (backend).supports(                            \
        (config), ::fusedmoe::Platform::detect((config).device), dispatch_format(config));       \
    if (!fusedmoe_support_.ok) GTEST_SKIP() << (backend).id << ": " << fusedmoe_support_.reason; \
  } while (0)

inline void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw CudaError(std::string(what) + ": " + cudaGetErrorString(status));
}

// A copy of `tensor` on `device` (itself when it is there already).
inline Tensor to_device(const Tensor& tensor, Device device = kGpu) {
  if (!tensor.defined() || tensor.device() == device) return tensor;
  Tensor copy = Tensor::empty(tensor.dtype(), tensor.shape(), device);
  copy_tensor(tensor, copy);
  return copy;
}

inline Tensor to_host(const TensorView& tensor) {
  Tensor copy = Tensor::empty(tensor.dtype(), tensor.shape());
  copy_tensor(tensor, copy);
  return copy;
}

// The expert weights on `device`; router and shared gates stay on the CPU (as set_weights wants).
inline MoeWeights weights_on(MoeWeights weights, Device device = kGpu) {
  for (Tensor* tensor : {&weights.w13, &weights.w2, &weights.shared_w13, &weights.shared_w2}) {
    *tensor = to_device(*tensor, device);
  }
  return weights;
}

// All bits set: NaN in bf16, fp16 and fp32. On the stream, then waits.
inline void poison(const TensorView& tensor, cudaStream_t stream = nullptr) {
  check_cuda(cudaMemsetAsync(tensor.data(), 0xff, tensor.nbytes(), stream), "cudaMemsetAsync");
  check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
}

inline Tensor empty_poisoned(DType dtype, std::initializer_list<std::int64_t> shape, Device device = kGpu) {
  Tensor tensor = Tensor::empty(dtype, shape, device);
  if (tensor.nbytes() > 0) poison(tensor);
  return tensor;
}

// A non-blocking stream, destroyed with the object.
class TestStream {
 public:
  TestStream() { check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate"); }
  ~TestStream() { cudaStreamDestroy(stream_); }
  TestStream(const TestStream&) = delete;
  TestStream& operator=(const TestStream&) = delete;
  cudaStream_t get() const { return stream_; }
  ExecContext context() const { return ExecContext{.stream = stream_}; }
  void synchronize() const { check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize"); }

 private:
  cudaStream_t stream_ = nullptr;
};

// Captures `body` (which enqueues work on `stream`) into a CUDA graph, by default in global capture mode so
// any allocation or host synchronisation inside fails the capture; returns the instantiated graph. Threads
// that capture while other threads of the process synchronise (one thread per GPU) pass
// cudaStreamCaptureModeThreadLocal, which still fails such calls on the capturing thread.
template <class Body>
cudaGraphExec_t capture_graph(cudaStream_t stream, Body&& body,
                              cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal) {
  check_cuda(cudaStreamBeginCapture(stream, mode), "cudaStreamBeginCapture");
  try {
    body();
  } catch (...) {
    cudaGraph_t broken = nullptr;
    cudaStreamEndCapture(stream, &broken);
    if (broken != nullptr) cudaGraphDestroy(broken);
    throw;
  }
  cudaGraph_t graph = nullptr;
  check_cuda(cudaStreamEndCapture(stream, &graph), "cudaStreamEndCapture");
  cudaGraphExec_t exec = nullptr;
  check_cuda(cudaGraphInstantiate(&exec, graph, 0), "cudaGraphInstantiate");
  check_cuda(cudaGraphDestroy(graph), "cudaGraphDestroy");
  return exec;
}

}  // namespace fusedmoe::testing
