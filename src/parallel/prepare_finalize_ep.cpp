#include "parallel/prepare_finalize_ep.hpp"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "core/check.hpp"
#include "core/elements.hpp"
#include "core/threading.hpp"
#include "kernel/weight_and_reduce.hpp"
#include "parallel/expert_map.hpp"

namespace fusedmoe {

namespace {

void check_communicator(const MoeConfig& config, const std::shared_ptr<Communicator>& communicator,
                        std::string_view mode) {
  FUSEDMOE_CHECK(communicator != nullptr, "[", mode,
                 "] needs a Communicator (LayerOptions::communicator) for ", config.parallel.ep_size,
                 " ranks");
  FUSEDMOE_CHECK(communicator->size() == config.parallel.ep_size, "[", mode, "] the communicator has ",
                 communicator->size(), " ranks but parallel.ep_size = ", config.parallel.ep_size);
  FUSEDMOE_CHECK(communicator->rank() == config.parallel.ep_rank, "[", mode, "] this process is rank ",
                 communicator->rank(),
                 " of the communicator but parallel.ep_rank = ", config.parallel.ep_rank);
  FUSEDMOE_CHECK(communicator->device_kind() == config.device.kind, "[", mode, "] the ", communicator->name(),
                 " communicator moves ", to_string(communicator->device_kind()),
                 " buffers but the layer runs on ", to_string(config.device));
  FUSEDMOE_CHECK(config.device.is_cpu(), "[", mode,
                 "] CPU tensors only for now (NCCL support comes with the CUDA backends)");
}

std::int64_t max_over_ranks(Communicator& communicator, std::int64_t local, std::vector<std::int64_t>& all) {
  all.assign(static_cast<std::size_t>(communicator.size()), 0);
  communicator.all_gather_int64(local, all);
  return *std::max_element(all.begin(), all.end());
}

// fp32 partial sums [rows, H] of what the Experts produced (weighting and reducing over k if they did not).
TensorView partial_sums(const DispatchedTokens& dispatched, const TensorView& expert_out,
                        WeightAndReduce policy, WorkspaceArena& workspace, int num_threads) {
  const std::int64_t rows = dispatched.hidden.size(0), hidden = dispatched.hidden.size(1);
  const TensorView sums = workspace.take(DType::fp32, {std::max<std::int64_t>(rows, 0), hidden});
  if (policy == WeightAndReduce::by_finalize) {
    weight_and_reduce_standard(expert_out, dispatched.topk_weights, sums, num_threads);
  } else if (rows > 0) {
    convert_elements(expert_out.data(), expert_out.dtype(), sums.data(), DType::fp32,
                     static_cast<std::size_t>(rows * hidden));
  }
  return sums;
}

// How many rows each rank receives from each other rank, given how many it sends to each.
std::vector<std::size_t> exchange_row_counts(Communicator& communicator,
                                             const std::vector<std::size_t>& send_rows, StreamHandle stream) {
  const std::size_t ranks = static_cast<std::size_t>(communicator.size());
  std::vector<std::int64_t> counts_out(send_rows.begin(), send_rows.end()), counts_in(ranks);
  const std::vector<std::size_t> eight(ranks, 8);
  communicator.all_to_allv(counts_out.data(), eight, counts_in.data(), eight, stream);
  return {counts_in.begin(), counts_in.end()};
}

// All-to-all of whole rows: send_rows[r] rows of `send` go to rank r, receive_rows[r] rows arrive from it.
void exchange_rows(Communicator& communicator, const void* send, const std::vector<std::size_t>& send_rows,
                   void* receive, const std::vector<std::size_t>& receive_rows, std::size_t bytes_per_row,
                   StreamHandle stream) {
  std::vector<std::size_t> out_bytes(send_rows.size()), in_bytes(receive_rows.size());
  for (std::size_t r = 0; r < send_rows.size(); ++r) {
    out_bytes[r] = send_rows[r] * bytes_per_row;
    in_bytes[r] = receive_rows[r] * bytes_per_row;
  }
  communicator.all_to_allv(send, out_bytes, receive, in_bytes, stream);
}

}  // namespace

// ---- all-gather / reduce-scatter ----------------------------------------------------------------

AllGatherPrepareFinalize::AllGatherPrepareFinalize(const MoeConfig& config,
                                                   std::shared_ptr<Communicator> communicator)
    : communicator_(std::move(communicator)) {
  check_communicator(config, communicator_, "allgather");
}

std::int64_t AllGatherPrepareFinalize::agree_num_tokens(std::int64_t local) {
  return max_over_ranks(*communicator_, local, rank_tokens_);
}

ExpertsProblem AllGatherPrepareFinalize::problem(std::int64_t num_tokens, const MoeConfig& config) const {
  // Every rank's chunk could arrive here (each token at most once).
  return standard_problem(num_tokens * communicator_->size(), config);
}

std::size_t AllGatherPrepareFinalize::workspace_bytes(std::int64_t num_tokens,
                                                      const MoeConfig& config) const {
  const std::int64_t all = num_tokens * communicator_->size(), hidden = config.hidden_size,
                     k = config.routing.top_k;
  return WorkspaceArena::bytes_for(config.act_dtype, all * hidden) +
         WorkspaceArena::bytes_for(DType::int32, all * k) + WorkspaceArena::bytes_for(DType::fp32, all * k) +
         WorkspaceArena::bytes_for(DType::fp32, all * hidden) +
         WorkspaceArena::bytes_for(DType::fp32, num_tokens * hidden);
}

DispatchedTokens AllGatherPrepareFinalize::prepare(const TensorView& hidden, const TensorView& topk_ids,
                                                   const TensorView& topk_weights,
                                                   const TensorView& expert_map, WorkspaceArena& workspace,
                                                   const ExecContext& context) {
  const int ranks = communicator_->size();
  rank_tokens_.assign(static_cast<std::size_t>(ranks), 0);
  communicator_->all_gather_int64(hidden.size(0), rank_tokens_);
  const std::int64_t total = std::accumulate(rank_tokens_.begin(), rank_tokens_.end(), std::int64_t{0});
  const std::int64_t width = hidden.size(1), k = topk_ids.size(1);
  DispatchedTokens dispatched;
  dispatched.format = ActivationFormat::standard;
  dispatched.expert_map = expert_map;
  dispatched.hidden = workspace.take(hidden.dtype(), {total, width});
  dispatched.topk_ids = workspace.take(DType::int32, {total, k});
  dispatched.topk_weights = workspace.take(DType::fp32, {total, k});
  auto gather = [&](const TensorView& mine, const TensorView& all, std::int64_t row_bytes) {
    std::vector<std::size_t> bytes(static_cast<std::size_t>(ranks));
    for (int r = 0; r < ranks; ++r) bytes[r] = static_cast<std::size_t>(rank_tokens_[r] * row_bytes);
    communicator_->all_gatherv(mine.data(), mine.nbytes(), all.data(), bytes, context.stream);
  };
  gather(hidden, dispatched.hidden, width * static_cast<std::int64_t>(dtype_size(hidden.dtype())));
  gather(topk_ids, dispatched.topk_ids, k * 4);
  gather(topk_weights, dispatched.topk_weights, k * 4);
  return dispatched;
}

void AllGatherPrepareFinalize::finalize(const DispatchedTokens& dispatched, const TensorView& expert_out,
                                        WeightAndReduce policy, const TensorView& out,
                                        WorkspaceArena& workspace, const ExecContext& context) {
  const std::int64_t hidden = dispatched.hidden.size(1);
  const TensorView sums =
      partial_sums(dispatched, expert_out, policy, workspace, resolve_num_threads(context));
  const TensorView mine = workspace.take(DType::fp32, {out.size(0), hidden});
  std::vector<std::size_t> counts(rank_tokens_.size());
  for (std::size_t r = 0; r < counts.size(); ++r)
    counts[r] = static_cast<std::size_t>(rank_tokens_[r] * hidden);
  communicator_->reduce_scatter_sum_fp32(sums.data_as<const float>(), mine.data_as<float>(), counts,
                                         context.stream);
  if (out.numel() > 0) {
    convert_elements(mine.data(), DType::fp32, out.data(), out.dtype(),
                     static_cast<std::size_t>(out.numel()));
  }
}

// ---- all-to-all dispatch / combine -------------------------------------------------------------

AllToAllPrepareFinalize::AllToAllPrepareFinalize(const MoeConfig& config,
                                                 std::shared_ptr<Communicator> communicator)
    : communicator_(std::move(communicator)) {
  check_communicator(config, communicator_, "all2all");
  owner_.assign(static_cast<std::size_t>(config.num_experts), -1);
  for (int rank = 0; rank < config.parallel.ep_size; ++rank) {
    for (std::int32_t expert :
         local_experts(config.num_experts, config.parallel.ep_size, rank, config.parallel.placement)) {
      owner_[expert] = rank;
    }
  }
}

std::int64_t AllToAllPrepareFinalize::agree_num_tokens(std::int64_t local) {
  std::vector<std::int64_t> all;
  return max_over_ranks(*communicator_, local, all);
}

ExpertsProblem AllToAllPrepareFinalize::problem(std::int64_t num_tokens, const MoeConfig& config) const {
  // Every rank's chunk could arrive here (each token at most once).
  return standard_problem(num_tokens * communicator_->size(), config);
}

std::size_t AllToAllPrepareFinalize::workspace_bytes(std::int64_t num_tokens, const MoeConfig& config) const {
  const std::int64_t ranks = communicator_->size(), hidden = config.hidden_size, k = config.routing.top_k;
  const std::int64_t sent = num_tokens * std::min<std::int64_t>(k, ranks), received = num_tokens * ranks;
  const auto rows = [&](std::int64_t count) {
    return WorkspaceArena::bytes_for(config.act_dtype, count * hidden) +
           WorkspaceArena::bytes_for(DType::int32, count * k) +
           WorkspaceArena::bytes_for(DType::fp32, count * k);
  };
  return rows(sent) + rows(received) + WorkspaceArena::bytes_for(DType::fp32, received * hidden) +
         WorkspaceArena::bytes_for(DType::fp32, sent * hidden) +
         WorkspaceArena::bytes_for(DType::fp32, num_tokens * hidden);
}

DispatchedTokens AllToAllPrepareFinalize::prepare(const TensorView& hidden, const TensorView& topk_ids,
                                                  const TensorView& topk_weights,
                                                  const TensorView& expert_map, WorkspaceArena& workspace,
                                                  const ExecContext& context) {
  const int ranks = communicator_->size();
  const std::int64_t tokens = hidden.size(0), width = hidden.size(1), k = topk_ids.size(1);
  const auto* ids = topk_ids.data_as<const std::int32_t>();
  // Rows to send, grouped by destination rank (ascending), tokens ascending within a rank.
  send_rows_.assign(static_cast<std::size_t>(ranks), 0);
  sent_token_.clear();
  for (int rank = 0; rank < ranks; ++rank) {
    for (std::int64_t token = 0; token < tokens; ++token) {
      bool owns = false;
      for (std::int64_t slot = 0; slot < k && !owns; ++slot) owns = owner_[ids[token * k + slot]] == rank;
      if (!owns) continue;
      sent_token_.push_back(static_cast<std::int32_t>(token));
      ++send_rows_[rank];
    }
  }
  // Everyone learns how many rows it receives from whom.
  receive_rows_ = exchange_row_counts(*communicator_, send_rows_, context.stream);
  const std::int64_t sent = static_cast<std::int64_t>(sent_token_.size());
  const auto received =
      static_cast<std::int64_t>(std::accumulate(receive_rows_.begin(), receive_rows_.end(), std::size_t{0}));

  const std::size_t row_bytes = static_cast<std::size_t>(width) * dtype_size(hidden.dtype());
  const TensorView send_hidden = workspace.take(hidden.dtype(), {sent, width});
  const TensorView send_ids = workspace.take(DType::int32, {sent, k});
  const TensorView send_weights = workspace.take(DType::fp32, {sent, k});
  for (std::int64_t row = 0; row < sent; ++row) {
    const std::int64_t token = sent_token_[row];
    std::memcpy(send_hidden.data_as<char>() + row * row_bytes,
                hidden.data_as<const char>() + token * row_bytes, row_bytes);
    std::memcpy(send_ids.data_as<std::int32_t>() + row * k, ids + token * k, static_cast<std::size_t>(k) * 4);
    std::memcpy(send_weights.data_as<float>() + row * k, topk_weights.data_as<const float>() + token * k,
                static_cast<std::size_t>(k) * 4);
  }
  DispatchedTokens dispatched;
  dispatched.format = ActivationFormat::standard;
  dispatched.expert_map = expert_map;
  dispatched.hidden = workspace.take(hidden.dtype(), {received, width});
  dispatched.topk_ids = workspace.take(DType::int32, {received, k});
  dispatched.topk_weights = workspace.take(DType::fp32, {received, k});
  auto exchange = [&](const TensorView& send, const TensorView& receive, std::size_t bytes_per_row) {
    exchange_rows(*communicator_, send.data(), send_rows_, receive.data(), receive_rows_, bytes_per_row,
                  context.stream);
  };
  exchange(send_hidden, dispatched.hidden, row_bytes);
  exchange(send_ids, dispatched.topk_ids, static_cast<std::size_t>(k) * 4);
  exchange(send_weights, dispatched.topk_weights, static_cast<std::size_t>(k) * 4);
  return dispatched;
}

void AllToAllPrepareFinalize::finalize(const DispatchedTokens& dispatched, const TensorView& expert_out,
                                       WeightAndReduce policy, const TensorView& out,
                                       WorkspaceArena& workspace, const ExecContext& context) {
  const std::int64_t hidden = dispatched.hidden.size(1);
  const TensorView sums =
      partial_sums(dispatched, expert_out, policy, workspace, resolve_num_threads(context));
  // Send each received row's partial sum back where it came from; receive ours in send order.
  const std::int64_t sent = static_cast<std::int64_t>(sent_token_.size());
  const TensorView returned = workspace.take(DType::fp32, {sent, hidden});
  exchange_rows(*communicator_, sums.data(), receive_rows_, returned.data(), send_rows_,
                static_cast<std::size_t>(hidden) * 4, context.stream);
  // Home: add the partial sums of each token in rank order.
  const TensorView total = workspace.take(DType::fp32, {out.size(0), hidden});
  std::fill(total.data_as<float>(), total.data_as<float>() + total.numel(), 0.0f);
  for (std::int64_t row = 0; row < sent; ++row) {
    float* destination = total.data_as<float>() + static_cast<std::int64_t>(sent_token_[row]) * hidden;
    const float* source = returned.data_as<const float>() + row * hidden;
    for (std::int64_t column = 0; column < hidden; ++column) destination[column] += source[column];
  }
  if (out.numel() > 0) {
    convert_elements(total.data(), DType::fp32, out.data(), out.dtype(),
                     static_cast<std::size_t>(out.numel()));
  }
}

// ---- batched all-to-all (fixed capacity) ----------------------------------------------------------

BatchedAllToAllPrepareFinalize::BatchedAllToAllPrepareFinalize(const MoeConfig& config,
                                                               std::shared_ptr<Communicator> communicator)
    : communicator_(std::move(communicator)),
      capacity_(config.parallel.batched_capacity),
      num_local_experts_(config.num_local_experts()) {
  check_communicator(config, communicator_, "all2all_batched");
  owner_.assign(static_cast<std::size_t>(config.num_experts), -1);
  owner_local_.assign(static_cast<std::size_t>(config.num_experts), -1);
  for (int rank = 0; rank < config.parallel.ep_size; ++rank) {
    const std::vector<std::int32_t> held =
        local_experts(config.num_experts, config.parallel.ep_size, rank, config.parallel.placement);
    for (std::size_t local = 0; local < held.size(); ++local) {
      owner_[held[local]] = rank;
      owner_local_[held[local]] = static_cast<std::int32_t>(local);
    }
  }
}

std::int64_t BatchedAllToAllPrepareFinalize::agree_num_tokens(std::int64_t local) {
  std::vector<std::int64_t> all;
  return max_over_ranks(*communicator_, local, all);
}

ExpertsProblem BatchedAllToAllPrepareFinalize::problem(std::int64_t num_tokens,
                                                       const MoeConfig& config) const {
  (void)num_tokens;  // the slabs have a fixed size, whatever this call's token count
  ExpertsProblem result = standard_problem(capacity_ * communicator_->size(), config);
  result.format = ActivationFormat::batched;
  return result;
}

std::size_t BatchedAllToAllPrepareFinalize::workspace_bytes(std::int64_t num_tokens,
                                                            const MoeConfig& config) const {
  const std::int64_t ranks = communicator_->size(), hidden = config.hidden_size, k = config.routing.top_k;
  const std::int64_t slab_rows = num_local_experts_ * capacity_ * ranks;
  const std::int64_t sent = num_tokens * k,
                     received = num_tokens * ranks * std::min<std::int64_t>(k, num_local_experts_);
  return WorkspaceArena::bytes_for(config.act_dtype, slab_rows * hidden) +          // slabs
         WorkspaceArena::bytes_for(DType::int32, num_local_experts_) +              // counts
         2 * WorkspaceArena::bytes_for(DType::fp32, slab_rows) +                    // slot weights, slot rows
         WorkspaceArena::bytes_for(config.act_dtype, (sent + received) * hidden) +  // hidden rows out and in
         2 * WorkspaceArena::bytes_for(DType::int32, sent + received) +  // local expert id out and in
         WorkspaceArena::bytes_for(config.act_dtype,
                                   (received + sent) * hidden) +       // expert rows back and home
         WorkspaceArena::bytes_for(DType::fp32, num_tokens * hidden);  // fp32 sums at home
}

DispatchedTokens BatchedAllToAllPrepareFinalize::prepare(const TensorView& hidden, const TensorView& topk_ids,
                                                         const TensorView& topk_weights,
                                                         const TensorView& expert_map,
                                                         WorkspaceArena& workspace,
                                                         const ExecContext& context) {
  const int ranks = communicator_->size();
  const std::int64_t tokens = hidden.size(0), width = hidden.size(1), k = topk_ids.size(1);
  const auto* ids = topk_ids.data_as<const std::int32_t>();
  const auto* weights = topk_weights.data_as<const float>();
  // One row per (token, slot), grouped by destination rank; (token, slot) ascending within a rank.
  send_rows_.assign(static_cast<std::size_t>(ranks), 0);
  sent_token_.clear();
  sent_weight_.clear();
  const std::size_t row_bytes = static_cast<std::size_t>(width) * dtype_size(hidden.dtype());
  const TensorView send_hidden = workspace.take(hidden.dtype(), {tokens * k, width});
  const TensorView send_expert = workspace.take(DType::int32, {tokens * k});
  std::int64_t sent = 0;
  for (int rank = 0; rank < ranks; ++rank) {
    for (std::int64_t index = 0; index < tokens * k; ++index) {
      if (owner_[ids[index]] != rank) continue;
      std::memcpy(send_hidden.data_as<char>() + sent * row_bytes,
                  hidden.data_as<const char>() + (index / k) * row_bytes, row_bytes);
      send_expert.data_as<std::int32_t>()[sent] = owner_local_[ids[index]];
      sent_token_.push_back(static_cast<std::int32_t>(index / k));
      sent_weight_.push_back(weights[index]);
      ++send_rows_[rank];
      ++sent;
    }
  }
  receive_rows_ = exchange_row_counts(*communicator_, send_rows_, context.stream);
  const auto received =
      static_cast<std::int64_t>(std::accumulate(receive_rows_.begin(), receive_rows_.end(), std::size_t{0}));
  const TensorView receive_hidden = workspace.take(hidden.dtype(), {received, width});
  const TensorView receive_expert = workspace.take(DType::int32, {received});
  auto exchange = [&](const TensorView& out, const TensorView& in, std::size_t bytes_per_row) {
    exchange_rows(*communicator_, out.data(), send_rows_, in.data(), receive_rows_, bytes_per_row,
                  context.stream);
  };
  exchange(send_hidden, receive_hidden, row_bytes);
  exchange(send_expert, receive_expert, 4);

  // Scatter into the fixed-capacity slabs (capacity tokens from each rank per expert), in arrival order
  // (source rank, then its order): deterministic. Every call uses the same buffer shapes.
  const std::int64_t slab_rows = capacity_ * ranks;
  DispatchedTokens dispatched;
  dispatched.format = ActivationFormat::batched;
  dispatched.expert_map = expert_map;
  dispatched.hidden = workspace.take(hidden.dtype(), {num_local_experts_, slab_rows, width});
  dispatched.expert_num_tokens = workspace.take(DType::int32, {num_local_experts_});
  dispatched.topk_weights = workspace.take(DType::fp32, {num_local_experts_, slab_rows});
  dispatched.slot_token = workspace.take(DType::int32, {num_local_experts_, slab_rows});
  auto* counts = dispatched.expert_num_tokens.data_as<std::int32_t>();
  std::fill(counts, counts + num_local_experts_, 0);
  received_slot_.assign(static_cast<std::size_t>(received), 0);
  for (std::int64_t row = 0; row < received; ++row) {
    const std::int32_t expert = receive_expert.data_as<const std::int32_t>()[row];
    FUSEDMOE_ASSERT(expert >= 0 && expert < num_local_experts_, "received a row for expert ", expert);
    FUSEDMOE_CHECK(counts[expert] < slab_rows, "[all2all_batched] expert ", expert, " received more than ",
                   slab_rows, " rows in one call (a token must list each expert at most once)");
    const std::int64_t slot = expert * slab_rows + counts[expert]++;
    received_slot_[row] = static_cast<std::int32_t>(slot);
    dispatched.slot_token.data_as<std::int32_t>()[slot] = static_cast<std::int32_t>(row);
    dispatched.topk_weights.data_as<float>()[slot] = 1.0f;  // weighted at home
    std::memcpy(dispatched.hidden.data_as<char>() + slot * row_bytes,
                receive_hidden.data_as<const char>() + row * row_bytes, row_bytes);
  }
  return dispatched;
}

void BatchedAllToAllPrepareFinalize::finalize(const DispatchedTokens& dispatched,
                                              const TensorView& expert_out, WeightAndReduce policy,
                                              const TensorView& out, WorkspaceArena& workspace,
                                              const ExecContext& context) {
  FUSEDMOE_ASSERT(policy == WeightAndReduce::by_finalize, "batched Experts leave weighting to finalize");
  const std::int64_t width = out.size(1);
  const std::int64_t received = static_cast<std::int64_t>(received_slot_.size());
  const std::int64_t sent = static_cast<std::int64_t>(sent_token_.size());
  const std::size_t row_bytes = static_cast<std::size_t>(width) * dtype_size(expert_out.dtype());
  // Unweighted expert rows back in arrival order, so they return to their senders.
  const TensorView back = workspace.take(expert_out.dtype(), {received, width});
  for (std::int64_t row = 0; row < received; ++row) {
    std::memcpy(back.data_as<char>() + row * row_bytes,
                expert_out.data_as<const char>() + received_slot_[row] * row_bytes, row_bytes);
  }
  const TensorView home = workspace.take(expert_out.dtype(), {sent, width});
  exchange_rows(*communicator_, back.data(), receive_rows_, home.data(), send_rows_, row_bytes,
                context.stream);
  (void)dispatched;
  // Home: weight in fp32 and sum in send order (rank, token, slot).
  const TensorView sums = workspace.take(DType::fp32, {out.size(0), width});
  std::fill(sums.data_as<float>(), sums.data_as<float>() + sums.numel(), 0.0f);
  for (std::int64_t row = 0; row < sent; ++row) {
    float* destination = sums.data_as<float>() + static_cast<std::int64_t>(sent_token_[row]) * width;
    const float weight = sent_weight_[row];
    for (std::int64_t column = 0; column < width; ++column) {
      destination[column] += weight * load_element(home.data(), home.dtype(), row * width + column);
    }
  }
  if (out.numel() > 0) {
    convert_elements(sums.data(), DType::fp32, out.data(), out.dtype(),
                     static_cast<std::size_t>(out.numel()));
  }
}

}  // namespace fusedmoe
