// cuda_cublas_grouped's Experts and converted weights (README.md has the design).
#pragma once

#include <cublas_v2.h>
#include <cstdint>

#include <vector>

#include "fusedmoe/kernel.hpp"
#include "fusedmoe/oracle.hpp"

namespace fusedmoe::cuda_cublas_grouped {

// The canonical layout on the config's CUDA device: w13 [E_local, 2I, H] (gate rows, then up rows),
// w2 [E_local, H, I], bf16 (cuBLAS reads them as transposed column-major operands; see experts.cpp).
class CublasGroupedWeights final : public ExpertWeights {
 public:
  Tensor w13, w2;
  std::int64_t num_experts = 0, hidden = 0, intermediate = 0;
};

// Canonical bf16 w13 [E, 2I, H] and w2 [E, H, I], on the CPU or on the config's CUDA device.
std::shared_ptr<const ExpertWeights> convert_weights(const Tensor& w13, const Tensor& w2,
                                                     const MoeConfig& config);

// cublasGemmGroupedBatchedEx takes the per-group sizes on the host, so apply() reads the expert offsets back
// (one device-to-host copy and a stream synchronisation per call): it cannot be captured in a CUDA graph and
// throws Unsupported when asked to run inside a capture.
class CublasGroupedExperts final : public ExpertsModular {
 public:
  explicit CublasGroupedExperts(const MoeConfig& config);
  ~CublasGroupedExperts() override;
  CublasGroupedExperts(const CublasGroupedExperts&) = delete;
  CublasGroupedExperts& operator=(const CublasGroupedExperts&) = delete;

  std::string_view name() const override { return "cuda_cublas_grouped"; }
  ActivationFormat format() const override { return ActivationFormat::standard; }
  WeightAndReduce weight_and_reduce() const override { return WeightAndReduce::by_experts; }
  std::size_t workspace_bytes(const ExpertsProblem& problem) const override;
  void apply(const DispatchedTokens& dispatched, const ExpertWeights& weights, const TensorView& expert_out,
             WorkspaceArena& workspace, const ExecContext& context) override;

 private:
  // One GEMM's host arguments, one entry per group (a local expert with rows), sized for E_local at
  // construction.
  struct GroupArrays {
    std::vector<cublasOperation_t> transa, transb;
    std::vector<int> m, n, k, lda, ldb, ldc, group_size;
    std::vector<float> alpha, beta;
  };
  void run_gemm(const GroupArrays& arrays, int groups, const void* const* a, const void* const* b,
                void* const* c) const;

  MoeConfig config_;
  cublasHandle_t handle_ = nullptr;  // created on the config's device
  void* pinned_ = nullptr;  // page-locked: offsets [E_local + 1] int64, then 6 pointer arrays [E_local]
  // Recorded after the copy out of pinned_; the next call waits for it before rewriting pinned_ (calls may
  // come on different streams).
  cudaEvent_t pinned_free_ = nullptr;
  GroupArrays gemm1_, gemm2_;
};

}  // namespace fusedmoe::cuda_cublas_grouped
