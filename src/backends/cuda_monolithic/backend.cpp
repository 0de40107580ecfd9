// cuda_monolithic: the low-latency monolithic CUDA Experts for decode batches: routing and experts in three
// launches (the GPU router, then cuda_fused's small-M streaming pair), the tiled path beyond small M.
#include "backends/backends.hpp"
#include "backends/cuda_fused/experts.hpp"
#include "backends/cuda_fused/kernels/launch.hpp"
#include "backends/cuda_monolithic/experts.hpp"
#include "core/check.hpp"

namespace fusedmoe {

namespace cuda_monolithic {

namespace {

// The least opt-in shared memory per block the streaming kernels fit in. NOTE: cuda_fused states it only as
// the predicate stream_path_fits (the kernels' shared structs live in a CUDA header), so search it once.
std::size_t streaming_shared_memory() {
  static const std::size_t bytes = [] {
    std::size_t fails = 0, fits = std::size_t{1} << 24;
    while (fails + 1 < fits) {
      const std::size_t middle = fails + (fits - fails) / 2;
      if (cuda_fused::stream_path_fits(1, 1, 1, middle)) {
        fits = middle;
      } else {
        fails = middle;
      }
    }
    return fits;
  }();
  return bytes;
}

}  // namespace

Support supports(const MoeConfig& config, const Platform& platform, ActivationFormat format) {
  // Device, compute capability, dtypes and the tiles' shared memory: as cuda_fused, whose kernels run here.
  if (Support fused = cuda_fused::supports(config, platform, ActivationFormat::standard); !fused)
    return fused;
  if (is_expert_parallel(config.parallel.dispatch)) {
    return Support::no("routes inside itself on one device; dispatch is " +
                       std::string(to_string(config.parallel.dispatch)));
  }
  if (format != ActivationFormat::standard) {
    return Support::no("routes inside itself and takes the standard format; the dispatch delivers " +
                       std::string(to_string(format)));
  }
  if (config.num_experts > kMaxExperts) {
    return Support::no(
        str_cat("routes and streams at most ", kMaxExperts, " experts; num_experts is ", config.num_experts));
  }
  if (config.routing.top_k > kLowLatencyMaxPairs) {
    return Support::no(str_cat("streams at most ", kLowLatencyMaxPairs, " (token, expert) pairs; top_k is ",
                               config.routing.top_k));
  }
  if (platform.cuda.shared_memory_per_block < streaming_shared_memory()) {
    return Support::no(str_cat("the low-latency kernels need ", streaming_shared_memory(),
                               " bytes of shared memory per block; ", platform.cuda.name, " allows ",
                               platform.cuda.shared_memory_per_block));
  }
  // Every routing recipe: the GPU router has them all; weight-on-input (Llama-4) scales the input first.
  return Support::yes();
}

}  // namespace cuda_monolithic

BackendInfo cuda_monolithic_backend() {
  BackendInfo info;
  info.id = "cuda_monolithic";
  info.device_kind = DeviceKind::cuda;
  info.kind = ExpertsKind::monolithic;
  info.supports = cuda_monolithic::supports;
  info.convert_weights = cuda_fused::convert_weights;  // the same layout: the same kernels read it
  info.make_experts = [](const MoeConfig& config) {
    return std::make_unique<cuda_monolithic::CudaMonolithicExperts>(config);
  };
  return info;
}

}  // namespace fusedmoe
