// PrepareFinalize implementations across expert-parallel ranks. The Communicator moves bytes: MPI for CPU
// tensors, NCCL for CUDA tensors. allgather and all2all compute the row bookkeeping (who sends which row
// where) on the host in both cases; on a CUDA device the routing ids are first read back (the call waits for
// the GPU, so these paths cannot be captured in a CUDA graph) and the rows are packed and summed by device
// kernels (parallel/cuda/row_kernels.hpp) along index lists uploaded in one copy per step. all2all_batched
// on a CUDA device plans on the GPU with fixed message sizes instead (parallel/ep_batched_device.hpp) and
// captures in a CUDA graph.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "fusedmoe/communicator.hpp"
#include "fusedmoe/kernel.hpp"
#include "parallel/ep_batched_device.hpp"

namespace fusedmoe {

// Host integer arrays (index lists, counts) that rows move by, gathered in one buffer. On a CUDA device the
// buffer is copied to the workspace in one go (one wait) so kernels read it; on the CPU it is read in place.
class IndexPlan {
 public:
  struct Part {
    std::size_t offset = 0, count = 0;
  };
  void clear();
  // `count` new entries set to `fill`; write them through host() before upload().
  Part add(std::size_t count, std::int32_t fill = 0);
  std::int32_t* host(Part part) { return host_.data() + part.offset; }
  // After upload(): the entries where the tensors live (device memory on a CUDA device).
  const std::int32_t* where(Part part) const;
  // The part as a tensor of a 4-byte dtype (int32 or fp32 bit patterns) where the tensors live.
  TensorView view(Part part, DType dtype, std::initializer_list<std::int64_t> shape) const;
  void upload(WorkspaceArena& workspace, Device device, const ExecContext& context);

 private:
  std::vector<std::int32_t> host_;
  std::int32_t* device_ = nullptr;
  Device where_{};
};

// Every rank sees every token: prepare all-gathers hidden states, ids and weights; the Experts compute
// partial sums over their local experts for all tokens; finalize reduce-scatters (fp32 sum) so each rank
// gets its own tokens back. Simple, the reference for the other modes.
class AllGatherPrepareFinalize final : public PrepareFinalizeModular {
 public:
  AllGatherPrepareFinalize(const MoeConfig& config, std::shared_ptr<Communicator> communicator);
  std::string_view name() const override { return "allgather"; }
  ActivationFormat format() const override { return ActivationFormat::standard; }
  std::int64_t agree_num_tokens(std::int64_t local, const ExecContext& context) override;
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
  std::int64_t agree_num_tokens(std::int64_t local, const ExecContext& context) override;
  ExpertsProblem problem(std::int64_t num_tokens, const MoeConfig& config) const override;
  std::size_t workspace_bytes(std::int64_t num_tokens, const MoeConfig& config) const override;
  DispatchedTokens prepare(const TensorView& hidden, const TensorView& topk_ids,
                           const TensorView& topk_weights, const TensorView& expert_map,
                           WorkspaceArena& workspace, const ExecContext& context) override;
  void finalize(const DispatchedTokens& dispatched, const TensorView& expert_out, WeightAndReduce policy,
                const TensorView& out, WorkspaceArena& workspace, const ExecContext& context) override;

 private:
  std::shared_ptr<Communicator> communicator_;
  std::vector<std::int32_t> owner_;                    // global expert -> rank
  std::vector<std::int32_t> host_ids_;                 // topk_ids read back from a CUDA device
  std::vector<std::size_t> send_rows_, receive_rows_;  // per rank
  IndexPlan plan_;
  IndexPlan::Part sent_token_;              // per sent row: its local token, grouped by destination rank
  IndexPlan::Part token_begin_, by_token_;  // sent rows by token (CSR, ascending rows): combine order
};

// The low-latency shape: each (token, slot) row travels to the rank owning its expert and lands in that
// expert's slab of a fixed-capacity batched buffer [E_local, ranks * capacity, H] (capacity = tokens per
// call, so every buffer size is known up front). At most rank_capacity() pairs go from one rank to another
// per call (ParallelConfig::batched_rank_capacity; the default never drops): the pairs past it, in
// (token, slot) order, are dropped and counted (dropped_pairs()). The batched Experts return unweighted rows;
// finalize sends them home, where they are weighted in fp32 and summed. On the CPU the plan is built on the
// host (exact message sizes, summed in (rank, token, slot) order); on a CUDA device on the GPU with fixed
// message sizes (EpBatchedDevicePath, summed in slot order), capturable in a CUDA graph: while the stream is
// capturing, agree_num_tokens() answers batched_capacity without communicating (every rank then runs the
// chunks of batched_capacity tokens, so each rank must have at most batched_capacity tokens).
class BatchedAllToAllPrepareFinalize final : public PrepareFinalizeModular {
 public:
  BatchedAllToAllPrepareFinalize(const MoeConfig& config, std::shared_ptr<Communicator> communicator);
  std::string_view name() const override { return "all2all_batched"; }
  ActivationFormat format() const override { return ActivationFormat::batched; }
  std::int64_t max_tokens_per_call() const override { return capacity_; }
  std::int64_t agree_num_tokens(std::int64_t local, const ExecContext& context) override;
  ExpertsProblem problem(std::int64_t num_tokens, const MoeConfig& config) const override;
  std::size_t workspace_bytes(std::int64_t num_tokens, const MoeConfig& config) const override;
  DispatchedTokens prepare(const TensorView& hidden, const TensorView& topk_ids,
                           const TensorView& topk_weights, const TensorView& expert_map,
                           WorkspaceArena& workspace, const ExecContext& context) override;
  void finalize(const DispatchedTokens& dispatched, const TensorView& expert_out, WeightAndReduce policy,
                const TensorView& out, WorkspaceArena& workspace, const ExecContext& context) override;

  // Pairs dropped so far (accumulated over calls): at the sender because a destination's rank_capacity()
  // rows were full, and at the receiver because a slab was full (a token listing an expert twice; the CPU
  // path rejects that on every rank instead). On a CUDA device this reads the device counters after the work
  // queued on `context.stream`: pass the stream the forwards ran on (the default, the legacy stream, does not
  // wait for non-blocking streams).
  struct DroppedPairs {
    std::int64_t over_rank_capacity = 0, over_slab = 0;
  };
  DroppedPairs dropped_pairs(const ExecContext& context = {}) const;
  std::int64_t rank_capacity() const { return rank_capacity_; }

 private:
  std::shared_ptr<Communicator> communicator_;
  Device device_;
  std::int64_t capacity_, rank_capacity_, num_local_experts_;
  std::unique_ptr<EpBatchedDevicePath> device_path_;  // CUDA devices
  DroppedPairs dropped_;                              // CPU
  std::vector<std::int32_t> owner_, owner_local_;     // global expert -> rank, and its local id there
  std::vector<std::size_t> send_rows_, receive_rows_;
  IndexPlan plan_;                          // dispatch: what leaves this rank
  IndexPlan::Part sent_token_;              // per sent row: its token, grouped by destination rank
  IndexPlan::Part sent_expert_;             // per sent row: the local id of its expert on the destination
  IndexPlan::Part sent_index_;              // per sent row: token * k + slot (where its routing weight is)
  IndexPlan::Part token_begin_, by_token_;  // sent rows by token (CSR, ascending rows): combine order
  TensorView sent_weight_;                  // per sent row: its routing weight (fp32, where the tensors live)
  IndexPlan slots_;                         // arrival: the slab layout
  IndexPlan::Part expert_count_, slot_row_, slot_weight_, received_slot_;
  std::int64_t received_ = 0;
};

}  // namespace fusedmoe
