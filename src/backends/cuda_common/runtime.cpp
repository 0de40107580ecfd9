// The CUDA runtime glue core needs: device memory hooks (cudaMalloc/cudaFree, copies, zero fills), the
// device probe behind Platform::detect, error messages, and cached device attributes.
#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>

#include "backends/cuda_common/cuda_check.hpp"
#include "core/allocator.hpp"
#include "core/check.hpp"
#include "core/cuda_runtime.hpp"
#include "core/env.hpp"
#include "fusedmoe/log.hpp"

namespace fusedmoe {

namespace cuda {

std::string cuda_error_message(cudaError_t code, const char* call, const char* file, int line) {
  return str_cat("[cuda] ", call, " failed: ", cudaGetErrorName(code), " (", static_cast<int>(code),
                 "): ", cudaGetErrorString(code), " at ", file, ":", line);
}

void throw_cuda_error(cudaError_t code, const char* call, const char* file, int line) {
  throw CudaError(cuda_error_message(code, call, file, line));
}

DeviceGuard::DeviceGuard(int device_index) {
  FUSEDMOE_CUDA_CHECK(cudaGetDevice(&previous_));
  if (previous_ != device_index) {
    FUSEDMOE_CUDA_CHECK(cudaSetDevice(device_index));
    switched_ = true;
  }
}

DeviceGuard::~DeviceGuard() {
  if (switched_) (void)cudaSetDevice(previous_);  // destructors never throw
}

const DeviceAttributes& device_attributes(int device_index) {
  static std::mutex mutex;
  static std::map<int, DeviceAttributes> cache;  // node-based: references stay valid
  std::lock_guard lock(mutex);
  if (auto found = cache.find(device_index); found != cache.end()) return found->second;
  DeviceAttributes attributes;
  int major = 0, minor = 0, sms = 0, optin = 0, l2 = 0;
  FUSEDMOE_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device_index));
  FUSEDMOE_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device_index));
  FUSEDMOE_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device_index));
  FUSEDMOE_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device_index));
  FUSEDMOE_CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, device_index));
  cudaDeviceProp properties{};
  FUSEDMOE_CUDA_CHECK(cudaGetDeviceProperties(&properties, device_index));
  attributes.compute_capability = major * 10 + minor;
  attributes.num_sms = sms;
  attributes.shared_memory_per_block_optin = static_cast<std::size_t>(optin);
  attributes.l2_bytes = static_cast<std::size_t>(l2);
  attributes.name = properties.name;
  return cache.emplace(device_index, std::move(attributes)).first->second;
}

void synchronize(cudaStream_t stream) {
  FUSEDMOE_CUDA_CHECK(cudaStreamSynchronize(stream));
}

void allow_dynamic_shared_memory(const void* kernel, int bytes) {
  if (bytes <= 48 * 1024) return;
  static std::mutex mutex;
  // The attribute is a limit: only ever raised, so a kernel launched with several sizes keeps the largest
  // (setting each size as it comes would let a smaller one undo a larger one that is cached as done).
  static std::map<std::pair<const void*, int>, int> allowed;
  int device = 0;
  FUSEDMOE_CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard lock(mutex);
  int& limit = allowed[{kernel, device}];
  if (bytes <= limit) return;
  FUSEDMOE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  limit = bytes;
}

bool dependent_launch_requested() {
  return !env_switch("FUSEDMOE_CUDA_PDL", "on", "off");
}

bool grid_fits_one_wave(const void* kernel, std::int64_t blocks, int threads, int shared_bytes) {
  return blocks <= resident_blocks(kernel, threads, shared_bytes);
}

bool grid_fills_a_wave(const void* kernel, std::int64_t blocks, int threads, int shared_bytes) {
  return blocks >= resident_blocks(kernel, threads, shared_bytes);
}

std::int64_t resident_blocks(const void* kernel, int threads, int shared_bytes) {
  static std::mutex mutex;
  static std::map<std::tuple<const void*, int, int, int>, int> blocks_per_sm;
  int device = 0;
  FUSEDMOE_CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard lock(mutex);
  auto found = blocks_per_sm.find({kernel, device, threads, shared_bytes});
  if (found == blocks_per_sm.end()) {
    int count = 0;
    FUSEDMOE_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&count, kernel, threads, shared_bytes));
    found = blocks_per_sm.emplace(std::tuple{kernel, device, threads, shared_bytes}, count).first;
  }
  return std::max<std::int64_t>(1,
                                static_cast<std::int64_t>(found->second) * device_attributes(device).num_sms);
}

std::int64_t resident_clusters(const void* kernel, int threads, int shared_bytes, int cluster_x) {
  static std::mutex mutex;
  static std::map<std::tuple<const void*, int, int, int, int>, int> clusters;
  int device = 0;
  FUSEDMOE_CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard lock(mutex);
  auto found = clusters.find({kernel, device, threads, shared_bytes, cluster_x});
  if (found == clusters.end()) {
    cudaLaunchAttribute attribute{};
    attribute.id = cudaLaunchAttributeClusterDimension;
    attribute.val.clusterDim.x = static_cast<unsigned>(cluster_x);
    attribute.val.clusterDim.y = 1;
    attribute.val.clusterDim.z = 1;
    cudaLaunchConfig_t config{};
    config.gridDim = dim3(static_cast<unsigned>(cluster_x));
    config.blockDim = dim3(static_cast<unsigned>(threads));
    config.dynamicSmemBytes = static_cast<std::size_t>(shared_bytes);
    config.attrs = &attribute;
    config.numAttrs = 1;
    int count = 0;
    FUSEDMOE_CUDA_CHECK(cudaOccupancyMaxActiveClusters(&count, kernel, &config));
    if (log_enabled(LogLevel::debug)) {
      log(LogLevel::debug, "cuda: " + std::to_string(count) + " clusters of " + std::to_string(cluster_x) +
                               " blocks (" + std::to_string(threads) + " threads, " +
                               std::to_string(shared_bytes) + " bytes of shared memory) fit on device " +
                               std::to_string(device));
    }
    found = clusters.emplace(std::tuple{kernel, device, threads, shared_bytes, cluster_x}, count).first;
  }
  return found->second;
}

bool kernel_waits_for_prior_grids(const void* kernel) {
  static std::mutex mutex;
  static std::map<std::pair<const void*, int>, bool> cache;
  int device = 0;
  FUSEDMOE_CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard lock(mutex);
  if (auto found = cache.find({kernel, device}); found != cache.end()) return found->second;
  cudaFuncAttributes attributes{};
  FUSEDMOE_CUDA_CHECK(cudaFuncGetAttributes(&attributes, kernel));
  const bool waits = device_attributes(device).compute_capability >= 90 && attributes.ptxVersion >= 90;
  cache.emplace(std::pair{kernel, device}, waits);
  return waits;
}

}  // namespace cuda

namespace {

void* cuda_allocate(int device_index, std::size_t bytes) {
  cuda::DeviceGuard guard(device_index);
  void* pointer = nullptr;
  const cudaError_t status = cudaMalloc(&pointer, bytes == 0 ? 1 : bytes);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();  // an allocation failure is not sticky: clear it
    throw CudaError(str_cat("[allocator] cannot allocate ", bytes, " bytes on cuda:", device_index, ": ",
                            cudaGetErrorName(status), " (", static_cast<int>(status),
                            "): ", cudaGetErrorString(status)));
  }
  return pointer;
}

// Runs from shared_ptr deleters: must not throw. At process exit the runtime may already be gone.
void cuda_release(int device_index, void* pointer) {
  if (pointer == nullptr) return;
  int previous = -1;
  const bool switched = cudaGetDevice(&previous) == cudaSuccess && previous != device_index &&
                        cudaSetDevice(device_index) == cudaSuccess;
  const cudaError_t status = cudaFree(pointer);
  if (switched) (void)cudaSetDevice(previous);
  if (status != cudaSuccess && status != cudaErrorCudartUnloading && status != cudaErrorContextIsDestroyed) {
    log(LogLevel::warn, str_cat("[allocator] cudaFree on cuda:", device_index,
                                " failed: ", cudaGetErrorName(status), ": ", cudaGetErrorString(status)));
  }
}

// Every direction goes through cudaMemcpyAsync on the caller's stream (unified addressing finds the
// direction). A copy that touches host memory waits for itself, so the host may read or reuse its
// buffer on return; device-to-device copies stay asynchronous (and capturable in a CUDA graph).
void cuda_copy(void* dst, Device dst_device, const void* src, Device src_device, std::size_t bytes,
               StreamHandle stream) {
  const int device_index = dst_device.is_cuda() ? dst_device.index : src_device.index;
  cuda::DeviceGuard guard(device_index);
  const auto cuda_stream = static_cast<cudaStream_t>(stream);
  FUSEDMOE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, cuda_stream));
  if (dst_device.is_cpu() || src_device.is_cpu()) cuda::synchronize(cuda_stream);
}

// On the caller's stream; with no stream (Tensor::zeros) it waits, so the tensor is ready on return.
void cuda_fill_zero(void* dst, Device device, std::size_t bytes, StreamHandle stream) {
  cuda::DeviceGuard guard(device.index);
  const auto cuda_stream = static_cast<cudaStream_t>(stream);
  FUSEDMOE_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, cuda_stream));
  if (stream == nullptr) cuda::synchronize(cuda_stream);
}

CudaInfo probe_uncached(int device_index) {
  CudaInfo info;
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    if (status == cudaErrorInsufficientDriver) {
      info.reason = str_cat("the NVIDIA driver is missing or older than this CUDA runtime (",
                            cudaGetErrorName(status), ")");
    } else {
      info.reason = str_cat("cudaGetDeviceCount: ", cudaGetErrorName(status), " (", static_cast<int>(status),
                            "): ", cudaGetErrorString(status));
    }
    return info;
  }
  if (count == 0) {
    info.reason = "the driver reports 0 CUDA devices";
    return info;
  }
  if (device_index >= count) {
    info.reason =
        str_cat("cuda:", device_index, " does not exist: this machine has ", count, " CUDA device(s)");
    return info;
  }
  try {
    const cuda::DeviceAttributes& attributes = cuda::device_attributes(device_index);
    info.available = true;
    info.compute_capability = attributes.compute_capability;
    info.num_sms = attributes.num_sms;
    info.shared_memory_per_block = attributes.shared_memory_per_block_optin;
    info.name = attributes.name;
  } catch (const Error& error) {
    info = CudaInfo{};
    info.reason = error.what();
  }
  return info;
}

// Platform::detect never throws: every failure becomes `available = false` with a reason.
CudaInfo cuda_probe(int device_index) {
  static std::mutex mutex;
  static std::map<int, CudaInfo> cache;
  std::lock_guard lock(mutex);
  if (auto found = cache.find(device_index); found != cache.end()) return found->second;
  CudaInfo info;
  try {
    info = probe_uncached(device_index);
  } catch (const std::exception& error) {
    info = CudaInfo{};
    info.reason = error.what();
  }
  cache.emplace(device_index, info);
  return info;
}

}  // namespace

void install_cuda_runtime() {
  static std::once_flag once;
  std::call_once(once, [] {
    set_cuda_memory_hooks(DeviceMemoryHooks{
        .allocate = cuda_allocate, .release = cuda_release, .copy = cuda_copy, .fill_zero = cuda_fill_zero});
    set_cuda_probe(cuda_probe);
  });
}

}  // namespace fusedmoe
