// PrepareFinalize implementations across expert-parallel ranks (CPU tensors; the Communicator moves bytes).
#pragma once

#include <memory>
#include <vector>

#include "fusedmoe/communicator.hpp"
#include "fusedmoe/kernel.hpp"

namespace fusedmoe {

// Every rank sees every token: prepare all-gathers hidden states, ids and weights; the Experts compute
// partial sums over their local experts for all tokens; finalize reduce-scatters (fp32 sum) so each rank
// gets its own tokens back. Simple, the reference for the other modes.
class AllGatherPrepareFinalize final : public PrepareFinalizeModular {
 public:
  AllGatherPrepareFinalize(const MoeConfig& config, std::shared_ptr<Communicator> communicator);
  std::string_view name() const override { return "allgather"; }
  ActivationFormat format() const override { return ActivationFormat::standard; }
  std::int64_t agree_num_tokens(std::int64_t local) override;
  ExpertsProblem problem(std::int64_t num_tokens, const MoeConfig& config) const override;
  std::size_t workspace_bytes(std::int64_t num_tokens, const MoeConfig& config) const override;
  DispatchedTokens prepare(const TensorView& hidden, const TensorView& topk_ids,
                           const TensorView& topk_weights, const TensorView& expert_map,
                           WorkspaceArena& workspace, const ExecContext& context) override;
  void finalize(const DispatchedTokens& dispatched, const TensorView& expert_out, WeightAndReduce policy,
                const TensorView& out, WorkspaceArena& workspace, const ExecContext& context) override;

 private:
  std::shared_ptr<Communicator> communicator_;
  std::vector<std::int64_t> rank_tokens_;  // tokens of each rank in this call
};

// Each token travels only to the ranks that own one of its experts (once per rank, with its full id and
// weight rows; the receiver's expert map ignores the slots it does not own). Finalize sends each partial
// sum back to the token's home rank, which adds them in rank order (deterministic).
class AllToAllPrepareFinalize final : public PrepareFinalizeModular {
 public:
  AllToAllPrepareFinalize(const MoeConfig& config, std::shared_ptr<Communicator> communicator);
  std::string_view name() const override { return "all2all"; }
  ActivationFormat format() const override { return ActivationFormat::standard; }
  std::int64_t agree_num_tokens(std::int64_t local) override;
  ExpertsProblem problem(std::int64_t num_tokens, const MoeConfig& config) const override;
  std::size_t workspace_bytes(std::int64_t num_tokens, const MoeConfig& config) const override;
  DispatchedTokens prepare(const TensorView& hidden, const TensorView& topk_ids,
                           const TensorView& topk_weights, const TensorView& expert_map,
                           WorkspaceArena& workspace, const ExecContext& context) override;
  void finalize(const DispatchedTokens& dispatched, const TensorView& expert_out, WeightAndReduce policy,
                const TensorView& out, WorkspaceArena& workspace, const ExecContext& context) override;

 private:
  std::shared_ptr<Communicator> communicator_;
  std::vector<std::int32_t> owner_;       // global expert -> rank
  std::vector<std::int32_t> sent_token_;  // per sent row: its local token, grouped by destination rank
  std::vector<std::size_t> send_rows_, receive_rows_;  // per rank
};

// The low-latency shape: each (token, slot) row travels to the rank owning its expert and lands in that
// expert's slab of a fixed-capacity batched buffer [E_local, ranks * capacity, H] (capacity = tokens per
// call, so every buffer size is known up front). The batched Experts return unweighted rows; finalize sends
// them home, where they are weighted in fp32 and summed in (rank, token, slot) order.
class BatchedAllToAllPrepareFinalize final : public PrepareFinalizeModular {
 public:
  BatchedAllToAllPrepareFinalize(const MoeConfig& config, std::shared_ptr<Communicator> communicator);
  std::string_view name() const override { return "all2all_batched"; }
  ActivationFormat format() const override { return ActivationFormat::batched; }
  std::int64_t max_tokens_per_call() const override { return capacity_; }
  std::int64_t agree_num_tokens(std::int64_t local) override;
  ExpertsProblem problem(std::int64_t num_tokens, const MoeConfig& config) const override;
  std::size_t workspace_bytes(std::int64_t num_tokens, const MoeConfig& config) const override;
  DispatchedTokens prepare(const TensorView& hidden, const TensorView& topk_ids,
                           const TensorView& topk_weights, const TensorView& expert_map,
                           WorkspaceArena& workspace, const ExecContext& context) override;
  void finalize(const DispatchedTokens& dispatched, const TensorView& expert_out, WeightAndReduce policy,
                const TensorView& out, WorkspaceArena& workspace, const ExecContext& context) override;

 private:
  std::shared_ptr<Communicator> communicator_;
  std::int64_t capacity_, num_local_experts_;
  std::vector<std::int32_t> owner_, owner_local_;  // global expert -> rank, and its local id there
  std::vector<std::int32_t> sent_token_;           // per sent row: its token, grouped by destination rank
  std::vector<float> sent_weight_;                 // per sent row: its routing weight
  std::vector<std::int32_t> received_slot_;        // per received row: its slab slot (expert * cap + j)
  std::vector<std::size_t> send_rows_, receive_rows_;
};

}  // namespace fusedmoe
