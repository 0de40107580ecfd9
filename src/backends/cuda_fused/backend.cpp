// cuda_fused: the modular CUDA Experts (the role vLLM's Triton fused_moe plays), standard format, by_experts.
#include "backends/backends.hpp"
#include "backends/cuda_fused/experts.hpp"
#include "backends/cuda_fused/kernels/tile_table.hpp"
#include "core/check.hpp"

namespace fusedmoe {

namespace cuda_fused {

Support supports(const MoeConfig& config, const Platform& platform, ActivationFormat format) {
  if (!config.device.is_cuda())
    return Support::no("runs on CUDA; config device is " + to_string(config.device));
  if (!platform.cuda.available) return Support::no("no CUDA device: " + platform.cuda.reason);
  if (platform.cuda.compute_capability < 80) {
    return Support::no(str_cat("needs compute capability 8.0 or newer (bf16 mma.sync); ",
                               to_string(config.device), " (", platform.cuda.name, ") is sm_",
                               platform.cuda.compute_capability));
  }
  if (config.weight_dtype != DType::bf16) {
    return Support::no(str_cat("needs bf16 weights; weight_dtype is ", to_string(config.weight_dtype)));
  }
  if (config.act_dtype != DType::bf16) {
    return Support::no(str_cat("needs bf16 activations; act_dtype is ", to_string(config.act_dtype)));
  }
  // Activations: SiLU and GELU, both fused into GEMM1's epilogue. Any H and I (tails are padded).
  if (platform.cuda.shared_memory_per_block < max_tile_shared_memory()) {
    return Support::no(str_cat("needs ", max_tile_shared_memory(), " bytes of shared memory per block; ",
                               platform.cuda.name, " allows ", platform.cuda.shared_memory_per_block));
  }
  // Expert parallelism: allgather / all2all deliver the standard format with global ids and the expert map
  // (-1 = not on this rank), which the kernels honour; batched dispatches are refused below.
  if (format != ActivationFormat::standard) {
    return Support::no("consumes the standard format; the dispatch delivers " +
                       std::string(to_string(format)));
  }
  return Support::yes();
}

}  // namespace cuda_fused

BackendInfo cuda_fused_backend() {
  BackendInfo info;
  info.id = "cuda_fused";
  info.device_kind = DeviceKind::cuda;
  info.kind = ExpertsKind::modular;
  info.supports = cuda_fused::supports;
  info.convert_weights = cuda_fused::convert_weights;
  info.make_experts = [](const MoeConfig& config) {
    return std::make_unique<cuda_fused::CudaFusedExperts>(config);
  };
  return info;
}

}  // namespace fusedmoe
