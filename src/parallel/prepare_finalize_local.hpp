// PrepareFinalize implementations for one device (no communication).
#pragma once

#include <cstdint>

#include "fusedmoe/kernel.hpp"

namespace fusedmoe {

// Standard format, tokens stay where they are: prepare passes views through; finalize weights and
// reduces (by_finalize) or copies (by_experts, unless the Experts wrote the output directly).
class LocalPrepareFinalize final : public PrepareFinalizeModular {
 public:
  std::string_view name() const override { return "local"; }
  ActivationFormat format() const override { return ActivationFormat::standard; }
  ExpertsProblem problem(std::int64_t num_tokens, const MoeConfig& config) const override;
  std::size_t workspace_bytes(std::int64_t num_tokens, const MoeConfig& config) const override;
  bool experts_write_output_directly() const override { return true; }
  DispatchedTokens prepare(const TensorView& hidden, const TensorView& topk_ids,
                           const TensorView& topk_weights, const TensorView& expert_map,
                           WorkspaceArena& workspace, const ExecContext& context) override;
  void finalize(const DispatchedTokens& dispatched, const TensorView& expert_out, WeightAndReduce policy,
                const TensorView& out, WorkspaceArena& workspace, const ExecContext& context) override;
};

// Batched format on one device: prepare scatters each token into the slab of every local expert it
// is routed to ([E_local, capacity, H], capacity = tokens per call); finalize gathers, weights and
// sums in fp32, experts in ascending order. On the CPU with host loops; on a CUDA device with kernels
// (parallel/cuda/batched_dispatch.hpp) that read nothing back, so the forward captures in a CUDA graph.
class LocalBatchedPrepareFinalize final : public PrepareFinalizeModular {
 public:
  explicit LocalBatchedPrepareFinalize(const MoeConfig& config)
      : capacity_(config.parallel.batched_capacity),
        num_experts_(config.num_experts),
        num_local_experts_(config.num_local_experts()) {}
  std::string_view name() const override { return "local_batched"; }
  ActivationFormat format() const override { return ActivationFormat::batched; }
  std::int64_t max_tokens_per_call() const override { return capacity_; }
  ExpertsProblem problem(std::int64_t num_tokens, const MoeConfig& config) const override;
  std::size_t workspace_bytes(std::int64_t num_tokens, const MoeConfig& config) const override;
  DispatchedTokens prepare(const TensorView& hidden, const TensorView& topk_ids,
                           const TensorView& topk_weights, const TensorView& expert_map,
                           WorkspaceArena& workspace, const ExecContext& context) override;
  void finalize(const DispatchedTokens& dispatched, const TensorView& expert_out, WeightAndReduce policy,
                const TensorView& out, WorkspaceArena& workspace, const ExecContext& context) override;

 private:
  void prepare_on_device(const DispatchedTokens& dispatched, const TensorView& hidden,
                         const TensorView& topk_ids, const TensorView& topk_weights,
                         const TensorView& expert_map, WorkspaceArena& workspace, const ExecContext& context);
  void finalize_on_device(const DispatchedTokens& dispatched, const TensorView& expert_out,
                          const TensorView& out, const ExecContext& context);

  std::int64_t capacity_;
  std::int64_t num_experts_;
  std::int64_t num_local_experts_;
  TensorView pair_slot_;  // CUDA: [M, k] slot of each (token, slot) pair or -1, from prepare to finalize
};

// Monolithic pairing on one device: hidden states and logits pass through untouched.
class LocalMonolithicPrepareFinalize final : public PrepareFinalizeMonolithic {
 public:
  std::string_view name() const override { return "local_monolithic"; }
  std::size_t workspace_bytes(std::int64_t, const MoeConfig&) const override { return 0; }
  Prepared prepare(const TensorView& hidden, const TensorView& router_logits, WorkspaceArena& workspace,
                   const ExecContext& context) override;
  void finalize(const TensorView& expert_out, const TensorView& out, const ExecContext& context) override;
};

}  // namespace fusedmoe
