// all2all_batched on a CUDA device (the NCCL communicator): every message has a size fixed by the
// configuration, and the plans are computed on the GPU from the routing
// (parallel/cuda/ep_batched_kernels.hpp), so a forward neither reads routing back nor waits for the GPU,
// allocates nothing, and captures in a CUDA graph. Per call (a chunk of M <= capacity local tokens, R ranks,
// P = rank_capacity):
//
//   route   every (token, slot) pair gets a position in its owner rank's send buffer [P, H] in (token, slot)
//           order; pairs past P are dropped (counted in dropped()[0]);
//   send    the R buffers [R, P, H] and their metadata [R, P + 1] (row count, local expert id per row):
//           two all-to-alls of whole buffers, the same byte counts on every rank, every call;
//   slabs   the valid received rows land in their expert's slab [E_local, R * capacity, H] in (source rank,
//           token, slot) order with expert_num_tokens, slot weight 1 and the arrival row as slot_token;
//   return  after the Experts, each received row's output goes back to the sender at the position it came
//           from (rows not in a slab are zeros): one all-to-all of [R, P, H];
//   combine out[t] = sum over slots s in order of w[t, s] * row of (t, s), in fp32, rounded once. Dropped
//           pairs contribute nothing.
//
// The same arithmetic as the CPU path (slab layout and fp32 weighting at home); only the order of the sum
// at home differs (slots here, destination rank then slot there), within rounding.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "fusedmoe/communicator.hpp"
#include "fusedmoe/kernel.hpp"

namespace fusedmoe {

class EpBatchedDevicePath {
 public:
  // owner / owner_local: global expert -> rank and local id there (host tables, uploaded once here).
  EpBatchedDevicePath(const MoeConfig& config, std::shared_ptr<Communicator> communicator,
                      const std::vector<std::int32_t>& owner, const std::vector<std::int32_t>& owner_local,
                      std::int64_t rank_capacity);

  // The same for every call: the buffers are sized by the configuration, not by the call's tokens.
  std::size_t workspace_bytes() const;
  // hidden [M, H] with M <= capacity, on the device.
  DispatchedTokens prepare(const TensorView& hidden, const TensorView& topk_ids,
                           const TensorView& topk_weights, const TensorView& expert_map,
                           WorkspaceArena& workspace, const ExecContext& context);
  void finalize(const TensorView& expert_out, const TensorView& out, const ExecContext& context);
  // int64 [2] on the device, accumulated over calls: pairs dropped at the sender (a destination's P rows
  // were full), and rows dropped at the receiver (a full slab: only a token listing an expert twice).
  const Tensor& dropped() const { return dropped_; }

 private:
  void exchange(const void* send, void* receive, std::size_t bytes_per_rank, const ExecContext& context);

  std::shared_ptr<Communicator> communicator_;
  Device device_;
  int ranks_ = 0;
  std::int64_t capacity_ = 0, rank_capacity_ = 0, slab_rows_ = 0;
  std::int64_t num_experts_ = 0, num_local_experts_ = 0, top_k_ = 0, hidden_ = 0;
  DType act_dtype_ = DType::bf16;
  Tensor owner_, owner_local_;  // int32 [E] on the device
  Tensor dropped_;              // int64 [2] on the device
  // From prepare to finalize (views into the call's workspace and arguments).
  TensorView pair_pos_, topk_weights_, rows_out_, rows_in_, row_slot_;
};

}  // namespace fusedmoe
