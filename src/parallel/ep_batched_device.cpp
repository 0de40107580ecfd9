#include "parallel/ep_batched_device.hpp"

#include <algorithm>
#include <climits>

#include "core/check.hpp"
#include "parallel/cuda/ep_batched_kernels.hpp"

namespace fusedmoe {

namespace {

// A host int32 table as a device tensor (copied once, at construction).
Tensor upload(const std::vector<std::int32_t>& table, Device device) {
  const auto count = static_cast<std::int64_t>(table.size());
  Tensor on_device = Tensor::empty(DType::int32, {count}, device);
  copy_tensor(TensorView(const_cast<std::int32_t*>(table.data()), DType::int32, {count}), on_device);
  return on_device;
}

}  // namespace

EpBatchedDevicePath::EpBatchedDevicePath(const MoeConfig& config, std::shared_ptr<Communicator> communicator,
                                         const std::vector<std::int32_t>& owner,
                                         const std::vector<std::int32_t>& owner_local,
                                         std::int64_t rank_capacity)
    : communicator_(std::move(communicator)),
      device_(config.device),
      ranks_(config.parallel.ep_size),
      capacity_(config.parallel.batched_capacity),
      rank_capacity_(rank_capacity),
      slab_rows_(config.parallel.batched_capacity * config.parallel.ep_size),
      num_experts_(config.num_experts),
      num_local_experts_(config.num_local_experts()),
      top_k_(config.routing.top_k),
      hidden_(config.hidden_size),
      act_dtype_(config.act_dtype) {
  // Positions and slots are int32 on the device; every offset into a row buffer is 64-bit.
  FUSEDMOE_CHECK(ranks_ * rank_capacity_ <= INT32_MAX, "[all2all_batched] ", ranks_, " ranks x ",
                 rank_capacity_,
                 " rows per rank: expected at most 2^31 - 1 rows (lower batched_capacity or "
                 "parallel.batched_rank_capacity)");
  FUSEDMOE_CHECK(num_local_experts_ * slab_rows_ <= INT32_MAX, "[all2all_batched] ", num_local_experts_,
                 " slabs of ", slab_rows_, " rows: expected at most 2^31 - 1 slots (lower batched_capacity)");
  FUSEDMOE_CHECK(capacity_ * top_k_ <= INT32_MAX, "[all2all_batched] batched_capacity ", capacity_,
                 " x top_k ", top_k_, ": expected at most 2^31 - 1 pairs per call");
  owner_ = upload(owner, device_);
  owner_local_ = upload(owner_local, device_);
  dropped_ = Tensor::zeros(DType::int64, {2}, device_);
}

std::size_t EpBatchedDevicePath::workspace_bytes() const {
  const std::int64_t rows = ranks_ * rank_capacity_, slots = num_local_experts_ * slab_rows_;
  return WorkspaceArena::bytes_for(DType::int32, capacity_ * top_k_) +                 // pair positions
         2 * WorkspaceArena::bytes_for(act_dtype_, rows * hidden_) +                   // rows out and in
         2 * WorkspaceArena::bytes_for(DType::int32, ranks_ * (rank_capacity_ + 1)) +  // metadata out, in
         WorkspaceArena::bytes_for(DType::int32, rows) +                               // slot of each row in
         WorkspaceArena::bytes_for(act_dtype_, slots * hidden_) +                      // slabs
         WorkspaceArena::bytes_for(DType::int32, num_local_experts_) +                 // counts
         WorkspaceArena::bytes_for(DType::fp32, slots) +                               // slot weights
         WorkspaceArena::bytes_for(DType::int32, slots);                               // slot tokens
}

void EpBatchedDevicePath::exchange(const void* send, void* receive, std::size_t bytes_per_rank,
                                   const ExecContext& context) {
  const std::vector<std::size_t> bytes(static_cast<std::size_t>(ranks_), bytes_per_rank);
  communicator_->all_to_allv(send, bytes, receive, bytes, context.stream);
}

DispatchedTokens EpBatchedDevicePath::prepare(const TensorView& hidden, const TensorView& topk_ids,
                                              const TensorView& topk_weights, const TensorView& expert_map,
                                              WorkspaceArena& workspace, const ExecContext& context) {
  const std::int64_t tokens = hidden.size(0), rows = ranks_ * rank_capacity_;
  FUSEDMOE_ASSERT(tokens <= capacity_ && topk_ids.size(1) == top_k_ && hidden.size(1) == hidden_,
                  "[all2all_batched] a call of ", tokens, " tokens (capacity ", capacity_, ")");
  const int device = device_.index;
  const std::size_t row_bytes = static_cast<std::size_t>(hidden_) * dtype_size(act_dtype_);
  auto* dropped = dropped_.data_as<unsigned long long>();
  pair_pos_ = workspace.take(DType::int32, {tokens * top_k_});
  topk_weights_ = topk_weights;
  rows_out_ = workspace.take(act_dtype_, {rows, hidden_});
  rows_in_ = workspace.take(act_dtype_, {rows, hidden_});
  const TensorView meta_out = workspace.take(DType::int32, {ranks_, rank_capacity_ + 1});
  const TensorView meta_in = workspace.take(DType::int32, {ranks_, rank_capacity_ + 1});
  row_slot_ = workspace.take(DType::int32, {rows});

  // Send side: positions, then rows (the metadata rows past each count are never read).
  cuda::ep_route_pairs(device,
                       cuda::EpRoute{.topk_ids = topk_ids.data_as<const std::int32_t>(),
                                     .num_pairs = tokens * top_k_,
                                     .num_experts = num_experts_,
                                     .owner = owner_.data_as<const std::int32_t>(),
                                     .owner_local = owner_local_.data_as<const std::int32_t>(),
                                     .ranks = ranks_,
                                     .rank_capacity = rank_capacity_,
                                     .send_meta = meta_out.data_as<std::int32_t>(),
                                     .pair_pos = pair_pos_.data_as<std::int32_t>(),
                                     .dropped = dropped},
                       context.stream);
  cuda::ep_scatter_rows(device, hidden.data(), top_k_, pair_pos_.data_as<const std::int32_t>(),
                        tokens * top_k_, row_bytes, rows_out_.data(), context.stream);
  exchange(rows_out_.data(), rows_in_.data(), static_cast<std::size_t>(rank_capacity_) * row_bytes, context);
  exchange(meta_out.data(), meta_in.data(), static_cast<std::size_t>(rank_capacity_ + 1) * 4, context);

  // Receive side: the slabs.
  DispatchedTokens dispatched;
  dispatched.format = ActivationFormat::batched;
  dispatched.expert_map = expert_map;
  dispatched.hidden = workspace.take(act_dtype_, {num_local_experts_, slab_rows_, hidden_});
  dispatched.expert_num_tokens = workspace.take(DType::int32, {num_local_experts_});
  dispatched.topk_weights = workspace.take(DType::fp32, {num_local_experts_, slab_rows_});
  dispatched.slot_token = workspace.take(DType::int32, {num_local_experts_, slab_rows_});
  cuda::ep_assign_slots(device,
                        cuda::EpSlots{.receive_meta = meta_in.data_as<const std::int32_t>(),
                                      .ranks = ranks_,
                                      .rank_capacity = rank_capacity_,
                                      .num_local_experts = num_local_experts_,
                                      .slab_rows = slab_rows_,
                                      .counts = dispatched.expert_num_tokens.data_as<std::int32_t>(),
                                      .slot_token = dispatched.slot_token.data_as<std::int32_t>(),
                                      .slot_weight = dispatched.topk_weights.data_as<float>(),
                                      .row_slot = row_slot_.data_as<std::int32_t>(),
                                      .dropped = dropped},
                        context.stream);
  cuda::ep_scatter_rows(device, rows_in_.data(), 1, row_slot_.data_as<const std::int32_t>(), rows, row_bytes,
                        dispatched.hidden.data(), context.stream);
  return dispatched;
}

void EpBatchedDevicePath::finalize(const TensorView& expert_out, const TensorView& out,
                                   const ExecContext& context) {
  const std::int64_t rows = ranks_ * rank_capacity_;
  const std::size_t row_bytes = static_cast<std::size_t>(hidden_) * dtype_size(expert_out.dtype());
  FUSEDMOE_ASSERT(
      expert_out.dtype() == act_dtype_ && expert_out.numel() == num_local_experts_ * slab_rows_ * hidden_,
      "[all2all_batched] expert_out of ", expert_out.numel(), " elements");
  // Each received row's output back to where it came from. The two row buffers are reused: the stream
  // orders these steps after the dispatch's exchange and slab scatter that last read them.
  cuda::ep_gather_rows_or_zero(device_.index, expert_out.data(), row_slot_.data_as<const std::int32_t>(),
                               rows, row_bytes, rows_out_.data(), context.stream);
  exchange(rows_out_.data(), rows_in_.data(), static_cast<std::size_t>(rank_capacity_) * row_bytes, context);
  // Home: the pairs of each token in slot order, from the position each was sent to.
  cuda::ep_combine(device_.index,
                   cuda::EpCombine{.rows = rows_in_.data(),
                                   .rows_dtype = expert_out.dtype(),
                                   .topk_weights = topk_weights_.data_as<const float>(),
                                   .pair_pos = pair_pos_.data_as<const std::int32_t>(),
                                   .num_tokens = out.size(0),
                                   .top_k = static_cast<int>(top_k_),
                                   .width = hidden_,
                                   .out = out.data(),
                                   .out_dtype = out.dtype()},
                   context.stream);
}

}  // namespace fusedmoe
