#include "parallel/prepare_finalize_ep.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <numeric>
#include <string>

#include "core/check.hpp"
#include "core/elements.hpp"
#include "core/threading.hpp"
#include "kernel/weight_and_reduce.hpp"
#include "parallel/expert_map.hpp"
#if FUSEDMOE_WITH_CUDA
#include "parallel/cuda/ep_batched_kernels.hpp"
#include "parallel/cuda/row_kernels.hpp"
#endif

namespace fusedmoe {

// ---- index plans ------------------------------------------------------------------------------------

void IndexPlan::clear() {
  host_.clear();
  device_ = nullptr;
  where_ = Device::cpu();
}

IndexPlan::Part IndexPlan::add(std::size_t count, std::int32_t fill) {
  const Part part{host_.size(), count};
  host_.resize(host_.size() + count, fill);
  return part;
}

const std::int32_t* IndexPlan::where(Part part) const {
  return (device_ != nullptr ? device_ : host_.data()) + part.offset;
}

TensorView IndexPlan::view(Part part, DType dtype, std::initializer_list<std::int64_t> shape) const {
  FUSEDMOE_ASSERT(dtype_size(dtype) == sizeof(std::int32_t), "index plans hold 4-byte values");
  return TensorView(const_cast<std::int32_t*>(where(part)), dtype, shape, where_);
}

void IndexPlan::upload(WorkspaceArena& workspace, Device device, const ExecContext& context) {
  device_ = nullptr;
  where_ = Device::cpu();
  if (device.is_cpu() || host_.empty()) return;
  const auto count = static_cast<std::int64_t>(host_.size());
  const TensorView on_device = workspace.take(DType::int32, {count});
  copy_tensor(TensorView(host_.data(), DType::int32, {count}), on_device, context);  // waits for the copy
  device_ = on_device.data_as<std::int32_t>();
  where_ = device;
}

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
  FUSEDMOE_CHECK(
      communicator->device_kind() == config.device.kind, "[", mode, "] the ", communicator->name(),
      " communicator moves ", to_string(communicator->device_kind()), " buffers but the layer runs on ",
      to_string(config.device),
      config.device.is_cuda() ? " (use make_nccl_communicator)" : " (use make_mpi_world_communicator)");
#if !FUSEDMOE_WITH_CUDA
  FUSEDMOE_CHECK(config.device.is_cpu(), "[", mode, "] this build has no CUDA support; the layer runs on ",
                 to_string(config.device));
#endif
}

// Checks a call's device before any work: a CUDA device must not be capturing (the routing is read back).
void begin_call(const TensorView& hidden, const ExecContext& context, std::string_view mode) {
  if (hidden.device().is_cpu()) return;
#if FUSEDMOE_WITH_CUDA
  cuda::check_not_capturing(hidden.device().index, context.stream,
                            str_cat("[", mode, "] expert-parallel dispatch"));
#else
  (void)context;
  throw Unsupported(str_cat("[", mode, "] this build has no CUDA support"));
#endif
}

// Slack for the alignment padding of takes that a workspace_bytes() formula counts together.
std::size_t padding_slack() {
  return 16 * WorkspaceArena::bytes_for(DType::uint8, 1);
}

std::int64_t max_over_ranks(Communicator& communicator, std::int64_t local, std::vector<std::int64_t>& all) {
  all.assign(static_cast<std::size_t>(communicator.size()), 0);
  communicator.all_gather_int64(local, all);
  return *std::max_element(all.begin(), all.end());
}

// The routing ids where the host can read them: in place on the CPU, else copied into `buffer` (waits).
const std::int32_t* ids_on_host(const TensorView& topk_ids, std::vector<std::int32_t>& buffer,
                                const ExecContext& context) {
  if (topk_ids.device().is_cpu()) return topk_ids.data_as<const std::int32_t>();
  buffer.resize(static_cast<std::size_t>(topk_ids.numel()));
  if (!buffer.empty())
    copy_tensor(topk_ids, TensorView(buffer.data(), DType::int32, topk_ids.shape()), context);
  return buffer.data();
}

// The ids index host tables (owner_, owner_local_): on a CUDA device they were not checked by the kernel
// (which reads nothing back), so they are checked here, once they are on the host. Returns the first problem,
// empty when there is none. `distinct`: a token listing one expert twice is refused too (the batched slabs
// have room for one row per (token, expert)).
std::string routing_ids_problem(const std::int32_t* ids, std::int64_t count, std::int64_t top_k,
                                std::size_t num_experts, std::string_view mode, bool distinct) {
  for (std::int64_t index = 0; index < count; ++index) {
    if (ids[index] < 0 || static_cast<std::size_t>(ids[index]) >= num_experts) {
      return str_cat("[", mode, "] topk_ids[", index / top_k, ", ", index % top_k, "] = ", ids[index],
                     ": expected 0 <= id < num_experts = ", num_experts,
                     " (expert-parallel dispatch routes every id to its owner rank)");
    }
    for (std::int64_t other = index - index % top_k; distinct && other < index; ++other) {
      if (ids[other] == ids[index]) {
        return str_cat("[", mode, "] topk_ids[", index / top_k, "] lists expert ", ids[index],
                       " twice: a token's top-k experts must be distinct");
      }
    }
  }
  return {};
}

// ---- row operations: the same logic on the host and on a CUDA device ---------------------------------

// destination row i = source row rows[i] (i < count); `rows` is where the tensors live (IndexPlan::where).
void gather_rows(const TensorView& source, const std::int32_t* rows, std::int64_t count,
                 std::size_t row_bytes, const TensorView& destination, const ExecContext& context) {
  if (destination.device().is_cuda()) {
#if FUSEDMOE_WITH_CUDA
    cuda::gather_rows(destination.device().index, source.data(), rows, count, row_bytes, destination.data(),
                      context.stream);
#else
    (void)context;
    throw InternalError("[ep] a CUDA tensor in a build without CUDA");
#endif
    return;
  }
  for (std::int64_t i = 0; i < count; ++i) {
    std::memcpy(destination.data_as<char>() + i * row_bytes,
                source.data_as<const char>() + rows[i] * row_bytes, row_bytes);
  }
}

// destination row rows[i] = source row i (i < count).
void scatter_rows(const TensorView& source, const std::int32_t* rows, std::int64_t count,
                  std::size_t row_bytes, const TensorView& destination, const ExecContext& context) {
  if (destination.device().is_cuda()) {
#if FUSEDMOE_WITH_CUDA
    cuda::scatter_rows(destination.device().index, source.data(), rows, count, row_bytes, destination.data(),
                       context.stream);
#else
    (void)context;
    throw InternalError("[ep] a CUDA tensor in a build without CUDA");
#endif
    return;
  }
  for (std::int64_t i = 0; i < count; ++i) {
    std::memcpy(destination.data_as<char>() + rows[i] * row_bytes,
                source.data_as<const char>() + i * row_bytes, row_bytes);
  }
}

// out[t] = sum of weight(j) * source[row(j)] over j in [begin_t, end_t), in fp32 in j order, rounded once
// into out's dtype. begin_t = offsets[t] (or t * stride without offsets); row(j) = rows[j] (or j); weight(j)
// = weights[row(j)] (or 1). Index lists and weights are where the tensors live.
struct RowSum {
  const float* weights = nullptr;
  const std::int32_t* offsets = nullptr;
  std::int64_t stride = 1;
  const std::int32_t* rows = nullptr;
};

void sum_rows(const TensorView& source, const RowSum& sum, const TensorView& out,
              const ExecContext& context) {
  const std::int64_t out_rows = out.size(0), width = out.size(1);
  if (out.device().is_cuda()) {
#if FUSEDMOE_WITH_CUDA
    cuda::sum_rows(out.device().index,
                   cuda::RowSum{.source = source.data(),
                                .source_dtype = source.dtype(),
                                .weights = sum.weights,
                                .offsets = sum.offsets,
                                .stride = sum.stride,
                                .rows = sum.rows,
                                .out = out.data(),
                                .out_dtype = out.dtype(),
                                .out_rows = out_rows,
                                .width = width},
                   context.stream);
#else
    throw InternalError("[ep] a CUDA tensor in a build without CUDA");
#endif
    return;
  }
  parallel_for(out_rows, resolve_num_threads(context), [&](std::int64_t begin_row, std::int64_t end_row) {
    std::vector<float> total(static_cast<std::size_t>(width));
    for (std::int64_t t = begin_row; t < end_row; ++t) {
      std::fill(total.begin(), total.end(), 0.0f);
      const std::int64_t begin = sum.offsets != nullptr ? sum.offsets[t] : t * sum.stride;
      const std::int64_t end = sum.offsets != nullptr ? sum.offsets[t + 1] : (t + 1) * sum.stride;
      for (std::int64_t j = begin; j < end; ++j) {
        const std::int64_t row = sum.rows != nullptr ? sum.rows[j] : j;
        const float weight = sum.weights != nullptr ? sum.weights[row] : 1.0f;
        for (std::int64_t column = 0; column < width; ++column) {
          total[column] += weight * load_element(source.data(), source.dtype(), row * width + column);
        }
      }
      for (std::int64_t column = 0; column < width; ++column) {
        store_element(out.data(), out.dtype(), t * width + column, total[column]);
      }
    }
  });
}

// fp32 sums [rows, H] -> out's dtype.
void to_output(const TensorView& sums, const TensorView& out, const ExecContext& context) {
  if (out.numel() == 0) return;
  if (out.device().is_cuda()) {
    sum_rows(sums, RowSum{}, out, context);
    return;
  }
  convert_elements(sums.data(), DType::fp32, out.data(), out.dtype(), static_cast<std::size_t>(out.numel()));
}

// fp32 partial sums [rows, H] of what the Experts produced (weighting and reducing over k if they did not).
TensorView partial_sums(const DispatchedTokens& dispatched, const TensorView& expert_out,
                        WeightAndReduce policy, WorkspaceArena& workspace, const ExecContext& context) {
  const std::int64_t rows = dispatched.hidden.size(0), hidden = dispatched.hidden.size(1);
  const TensorView sums = workspace.take(DType::fp32, {std::max<std::int64_t>(rows, 0), hidden});
  if (expert_out.device().is_cuda()) {
    const std::int64_t k = dispatched.topk_weights.size(1);
    if (policy == WeightAndReduce::by_finalize) {
      sum_rows(expert_out, RowSum{.weights = dispatched.topk_weights.data_as<const float>(), .stride = k},
               sums, context);
    } else {
      sum_rows(expert_out, RowSum{}, sums, context);
    }
  } else if (policy == WeightAndReduce::by_finalize) {
    weight_and_reduce_standard(expert_out, dispatched.topk_weights, sums, resolve_num_threads(context));
  } else if (rows > 0) {
    convert_elements(expert_out.data(), expert_out.dtype(), sums.data(), DType::fp32,
                     static_cast<std::size_t>(rows * hidden));
  }
  return sums;
}

// How many rows each rank receives from each other rank, given how many it sends to each (host integers).
// Also how ranks fail together: a rank whose routing is invalid (`problem`) sends -1 counts, and then every
// rank throws here, at the same point of the collective sequence (an error on one rank alone would leave the
// others waiting in the next exchange).
std::vector<std::size_t> exchange_row_counts(Communicator& communicator,
                                             const std::vector<std::size_t>& send_rows,
                                             const std::string& problem, std::string_view mode) {
  const std::size_t ranks = static_cast<std::size_t>(communicator.size());
  std::vector<std::int64_t> counts_out(ranks, -1), counts_in(ranks);
  if (problem.empty()) counts_out.assign(send_rows.begin(), send_rows.end());
  communicator.all_to_all_int64(counts_out, counts_in);
  if (!problem.empty()) throw InvalidArgument(problem);
  for (std::size_t rank = 0; rank < ranks; ++rank) {
    if (counts_in[rank] < 0) {
      throw InvalidArgument(str_cat("[", mode, "] rank ", rank,
                                    " rejected its routing (its error says why); every rank stops here"));
    }
  }
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

// The sent rows grouped by their token (CSR: rows of token t are by_token[begin[t] .. begin[t + 1]), in
// ascending row order): the order finalize adds them in, the same on the host and the device.
void plan_by_token(IndexPlan& plan, IndexPlan::Part sent_token, std::int64_t tokens, IndexPlan::Part& begin,
                   IndexPlan::Part& by_token) {
  begin = plan.add(static_cast<std::size_t>(tokens + 1));
  by_token = plan.add(sent_token.count);
  const std::int32_t* token_of = plan.host(sent_token);
  std::int32_t* offsets = plan.host(begin);
  for (std::size_t row = 0; row < sent_token.count; ++row) ++offsets[token_of[row] + 1];
  for (std::int64_t t = 0; t < tokens; ++t) offsets[t + 1] += offsets[t];
  std::vector<std::int32_t> next(offsets, offsets + tokens);
  std::int32_t* rows = plan.host(by_token);
  for (std::size_t row = 0; row < sent_token.count; ++row) {
    rows[next[token_of[row]]++] = static_cast<std::int32_t>(row);
  }
}

}  // namespace

// ---- all-gather / reduce-scatter ----------------------------------------------------------------

AllGatherPrepareFinalize::AllGatherPrepareFinalize(const MoeConfig& config,
                                                   std::shared_ptr<Communicator> communicator)
    : communicator_(std::move(communicator)) {
  check_communicator(config, communicator_, "allgather");
}

std::int64_t AllGatherPrepareFinalize::agree_num_tokens(std::int64_t local, const ExecContext&) {
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
         WorkspaceArena::bytes_for(DType::fp32, num_tokens * hidden) + padding_slack();
}

DispatchedTokens AllGatherPrepareFinalize::prepare(const TensorView& hidden, const TensorView& topk_ids,
                                                   const TensorView& topk_weights,
                                                   const TensorView& expert_map, WorkspaceArena& workspace,
                                                   const ExecContext& context) {
  begin_call(hidden, context, "allgather");
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
  const TensorView sums = partial_sums(dispatched, expert_out, policy, workspace, context);
  const TensorView mine = workspace.take(DType::fp32, {out.size(0), hidden});
  std::vector<std::size_t> counts(rank_tokens_.size());
  for (std::size_t r = 0; r < counts.size(); ++r)
    counts[r] = static_cast<std::size_t>(rank_tokens_[r] * hidden);
  communicator_->reduce_scatter_sum_fp32(sums.data_as<const float>(), mine.data_as<float>(), counts,
                                         context.stream);
  to_output(mine, out, context);
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

std::int64_t AllToAllPrepareFinalize::agree_num_tokens(std::int64_t local, const ExecContext&) {
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
         WorkspaceArena::bytes_for(DType::int32, 2 * sent + num_tokens + 1) +  // the index plan on a device
         padding_slack();
}

DispatchedTokens AllToAllPrepareFinalize::prepare(const TensorView& hidden, const TensorView& topk_ids,
                                                  const TensorView& topk_weights,
                                                  const TensorView& expert_map, WorkspaceArena& workspace,
                                                  const ExecContext& context) {
  begin_call(hidden, context, "all2all");
  const int ranks = communicator_->size();
  const std::int64_t tokens = hidden.size(0), width = hidden.size(1), k = topk_ids.size(1);
  const std::int32_t* ids = ids_on_host(topk_ids, host_ids_, context);
  if (const std::string problem = routing_ids_problem(ids, tokens * k, k, owner_.size(), "all2all", false);
      !problem.empty()) {
    exchange_row_counts(*communicator_, std::vector<std::size_t>(static_cast<std::size_t>(ranks)), problem,
                        "all2all");  // throws on every rank
  }
  // Rows to send, grouped by destination rank (ascending), tokens ascending within a rank.
  send_rows_.assign(static_cast<std::size_t>(ranks), 0);
  std::vector<std::int32_t> sent_token;
  for (int rank = 0; rank < ranks; ++rank) {
    for (std::int64_t token = 0; token < tokens; ++token) {
      bool owns = false;
      for (std::int64_t slot = 0; slot < k && !owns; ++slot) owns = owner_[ids[token * k + slot]] == rank;
      if (!owns) continue;
      sent_token.push_back(static_cast<std::int32_t>(token));
      ++send_rows_[rank];
    }
  }
  plan_.clear();
  sent_token_ = plan_.add(sent_token.size());
  std::copy(sent_token.begin(), sent_token.end(), plan_.host(sent_token_));
  plan_by_token(plan_, sent_token_, tokens, token_begin_, by_token_);
  plan_.upload(workspace, hidden.device(), context);
  // Everyone learns how many rows it receives from whom.
  receive_rows_ = exchange_row_counts(*communicator_, send_rows_, {}, "all2all");
  const auto sent = static_cast<std::int64_t>(sent_token.size());
  const auto received =
      static_cast<std::int64_t>(std::accumulate(receive_rows_.begin(), receive_rows_.end(), std::size_t{0}));

  const std::size_t row_bytes = static_cast<std::size_t>(width) * dtype_size(hidden.dtype());
  const std::size_t slot_bytes = static_cast<std::size_t>(k) * 4;
  const TensorView send_hidden = workspace.take(hidden.dtype(), {sent, width});
  const TensorView send_ids = workspace.take(DType::int32, {sent, k});
  const TensorView send_weights = workspace.take(DType::fp32, {sent, k});
  const std::int32_t* rows = plan_.where(sent_token_);
  gather_rows(hidden, rows, sent, row_bytes, send_hidden, context);
  gather_rows(topk_ids, rows, sent, slot_bytes, send_ids, context);
  gather_rows(topk_weights, rows, sent, slot_bytes, send_weights, context);
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
  exchange(send_ids, dispatched.topk_ids, slot_bytes);
  exchange(send_weights, dispatched.topk_weights, slot_bytes);
  return dispatched;
}

void AllToAllPrepareFinalize::finalize(const DispatchedTokens& dispatched, const TensorView& expert_out,
                                       WeightAndReduce policy, const TensorView& out,
                                       WorkspaceArena& workspace, const ExecContext& context) {
  const std::int64_t hidden = dispatched.hidden.size(1);
  const TensorView sums = partial_sums(dispatched, expert_out, policy, workspace, context);
  // Send each received row's partial sum back where it came from; receive ours in send order.
  const auto sent = static_cast<std::int64_t>(sent_token_.count);
  const TensorView returned = workspace.take(DType::fp32, {sent, hidden});
  exchange_rows(*communicator_, sums.data(), receive_rows_, returned.data(), send_rows_,
                static_cast<std::size_t>(hidden) * 4, context.stream);
  // Home: add the partial sums of each token in rank order.
  sum_rows(returned, RowSum{.offsets = plan_.where(token_begin_), .rows = plan_.where(by_token_)}, out,
           context);
}

// ---- batched all-to-all (fixed capacity) ----------------------------------------------------------

namespace {

// Pairs one rank may send another per call: the configured value, or enough that none is ever dropped (a
// token sends at most min(k, experts of the destination) pairs to one rank; every rank uses the largest
// expert count, so that the message sizes agree).
std::int64_t rank_capacity_of(const MoeConfig& config) {
  if (config.parallel.batched_rank_capacity > 0) return config.parallel.batched_rank_capacity;
  const std::int64_t most_local =
      (config.num_experts + config.parallel.ep_size - 1) / config.parallel.ep_size;
  return config.parallel.batched_capacity * std::min<std::int64_t>(config.routing.top_k, most_local);
}

}  // namespace

BatchedAllToAllPrepareFinalize::BatchedAllToAllPrepareFinalize(const MoeConfig& config,
                                                               std::shared_ptr<Communicator> communicator)
    : communicator_(std::move(communicator)),
      device_(config.device),
      capacity_(config.parallel.batched_capacity),
      rank_capacity_(rank_capacity_of(config)),
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
  if (device_.is_cuda()) {
#if FUSEDMOE_WITH_CUDA
    device_path_ =
        std::make_unique<EpBatchedDevicePath>(config, communicator_, owner_, owner_local_, rank_capacity_);
#endif
  }
}

std::int64_t BatchedAllToAllPrepareFinalize::agree_num_tokens(std::int64_t local,
                                                              const ExecContext& context) {
#if FUSEDMOE_WITH_CUDA
  // Inside a CUDA graph capture no rank may talk to the host: every rank runs batched_capacity tokens'
  // worth of chunks (the same collectives everywhere), empty ones past its own tokens.
  if (device_.is_cuda() && cuda::stream_is_capturing(device_.index, context.stream)) {
    if (local > capacity_) {
      throw Unsupported(str_cat("[all2all_batched] ", local,
                                " tokens on this rank while a CUDA graph is being captured: a captured "
                                "forward takes at most parallel.batched_capacity = ",
                                capacity_,
                                " tokens per rank (the ranks cannot agree on more chunks without a host "
                                "round trip); raise batched_capacity or run this batch outside the graph"));
    }
    return capacity_;
  }
#else
  (void)context;
#endif
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
#if FUSEDMOE_WITH_CUDA  // device_path_ exists only in CUDA builds (ep_batched_device.cpp)
  if (device_path_) return device_path_->workspace_bytes() + padding_slack();
#endif
  const std::int64_t ranks = communicator_->size(), hidden = config.hidden_size, k = config.routing.top_k;
  const std::int64_t slab_rows = num_local_experts_ * capacity_ * ranks;
  const std::int64_t sent = num_tokens * k,
                     received = num_tokens * ranks * std::min<std::int64_t>(k, num_local_experts_);
  return WorkspaceArena::bytes_for(config.act_dtype, slab_rows * hidden) +          // slabs
         WorkspaceArena::bytes_for(config.act_dtype, (sent + received) * hidden) +  // hidden rows out and in
         WorkspaceArena::bytes_for(DType::int32, received) +                        // local expert id in
         WorkspaceArena::bytes_for(DType::fp32, sent) +                             // routing weight out
         WorkspaceArena::bytes_for(config.act_dtype,
                                   (received + sent) * hidden) +  // expert rows back and home
         padding_slack();
}

BatchedAllToAllPrepareFinalize::DroppedPairs BatchedAllToAllPrepareFinalize::dropped_pairs(
    const ExecContext& context) const {
  if (!device_path_) return dropped_;
  std::int64_t counts[2] = {0, 0};
  copy_tensor(device_path_->dropped(), TensorView(counts, DType::int64, {2}), context);  // waits
  return {.over_rank_capacity = counts[0], .over_slab = counts[1]};
}

DispatchedTokens BatchedAllToAllPrepareFinalize::prepare(const TensorView& hidden, const TensorView& topk_ids,
                                                         const TensorView& topk_weights,
                                                         const TensorView& expert_map,
                                                         WorkspaceArena& workspace,
                                                         const ExecContext& context) {
#if FUSEDMOE_WITH_CUDA
  if (device_path_) {
    return device_path_->prepare(hidden, topk_ids, topk_weights, expert_map, workspace, context);
  }
#endif
  FUSEDMOE_CHECK(hidden.device().is_cpu(), "[all2all_batched] hidden on ", to_string(hidden.device()),
                 " but the layer was configured for ", to_string(device_));
  const int ranks = communicator_->size();
  const std::int64_t tokens = hidden.size(0), width = hidden.size(1), k = topk_ids.size(1);
  const std::int32_t* ids = topk_ids.data_as<const std::int32_t>();
  if (const std::string problem =
          routing_ids_problem(ids, tokens * k, k, owner_.size(), "all2all_batched", true);
      !problem.empty()) {
    exchange_row_counts(*communicator_, std::vector<std::size_t>(static_cast<std::size_t>(ranks)), problem,
                        "all2all_batched");  // throws on every rank
  }
  // One row per (token, slot), grouped by destination rank; (token, slot) ascending within a rank; at most
  // rank_capacity_ per rank (the rest dropped, as on a device).
  send_rows_.assign(static_cast<std::size_t>(ranks), 0);
  std::vector<std::int32_t> sent_index;
  for (int rank = 0; rank < ranks; ++rank) {
    for (std::int64_t index = 0; index < tokens * k; ++index) {
      if (owner_[ids[index]] != rank) continue;
      if (static_cast<std::int64_t>(send_rows_[rank]) >= rank_capacity_) {
        ++dropped_.over_rank_capacity;
        continue;
      }
      sent_index.push_back(static_cast<std::int32_t>(index));
      ++send_rows_[rank];
    }
  }
  const auto sent = static_cast<std::int64_t>(sent_index.size());
  plan_.clear();
  sent_index_ = plan_.add(sent_index.size());
  sent_token_ = plan_.add(sent_index.size());
  sent_expert_ = plan_.add(sent_index.size());
  for (std::int64_t row = 0; row < sent; ++row) {
    plan_.host(sent_index_)[row] = sent_index[row];
    plan_.host(sent_token_)[row] = static_cast<std::int32_t>(sent_index[row] / k);
    plan_.host(sent_expert_)[row] = owner_local_[ids[sent_index[row]]];
  }
  plan_by_token(plan_, sent_token_, tokens, token_begin_, by_token_);
  receive_rows_ = exchange_row_counts(*communicator_, send_rows_, {}, "all2all_batched");
  received_ =
      static_cast<std::int64_t>(std::accumulate(receive_rows_.begin(), receive_rows_.end(), std::size_t{0}));

  const std::size_t row_bytes = static_cast<std::size_t>(width) * dtype_size(hidden.dtype());
  const TensorView send_hidden = workspace.take(hidden.dtype(), {sent, width});
  gather_rows(hidden, plan_.where(sent_token_), sent, row_bytes, send_hidden, context);
  sent_weight_ = workspace.take(DType::fp32, {sent});
  gather_rows(topk_weights, plan_.where(sent_index_), sent, 4, sent_weight_, context);
  const TensorView receive_hidden = workspace.take(hidden.dtype(), {received_, width});
  const TensorView receive_expert = workspace.take(DType::int32, {received_});
  exchange_rows(*communicator_, send_hidden.data(), send_rows_, receive_hidden.data(), receive_rows_,
                row_bytes, context.stream);
  exchange_rows(*communicator_, plan_.where(sent_expert_), send_rows_, receive_expert.data(), receive_rows_,
                4, context.stream);
  const std::int32_t* received_expert = receive_expert.data_as<const std::int32_t>();

  // Slots in the fixed-capacity slabs (capacity tokens from each rank per expert), in arrival order (source
  // rank, then its order): deterministic. Every call uses the same buffer shapes.
  const std::int64_t slab_rows = capacity_ * ranks;
  slots_.clear();
  expert_count_ = slots_.add(static_cast<std::size_t>(num_local_experts_));
  slot_row_ = slots_.add(static_cast<std::size_t>(num_local_experts_ * slab_rows));
  // The slot weights are 1 (weighted at home), stored as fp32 bit patterns.
  slot_weight_ =
      slots_.add(static_cast<std::size_t>(num_local_experts_ * slab_rows), std::bit_cast<std::int32_t>(1.0f));
  received_slot_ = slots_.add(static_cast<std::size_t>(received_));
  std::int32_t* counts = slots_.host(expert_count_);
  for (std::int64_t row = 0; row < received_; ++row) {
    const std::int32_t expert = received_expert[row];
    FUSEDMOE_ASSERT(expert >= 0 && expert < num_local_experts_, "received a row for expert ", expert);
    // At most one row per (source token, expert) and capacity tokens per source rank (distinct ids are
    // checked on every rank before the exchange), so a slab cannot overflow.
    FUSEDMOE_ASSERT(counts[expert] < slab_rows, "expert ", expert, " received more than ", slab_rows,
                    " rows");
    const std::int64_t slot = expert * slab_rows + counts[expert]++;
    slots_.host(received_slot_)[row] = static_cast<std::int32_t>(slot);
    slots_.host(slot_row_)[slot] = static_cast<std::int32_t>(row);
  }
  DispatchedTokens dispatched;
  dispatched.format = ActivationFormat::batched;
  dispatched.expert_map = expert_map;
  dispatched.hidden = workspace.take(hidden.dtype(), {num_local_experts_, slab_rows, width});
  dispatched.expert_num_tokens = slots_.view(expert_count_, DType::int32, {num_local_experts_});
  dispatched.topk_weights = slots_.view(slot_weight_, DType::fp32, {num_local_experts_, slab_rows});
  dispatched.slot_token = slots_.view(slot_row_, DType::int32, {num_local_experts_, slab_rows});
  scatter_rows(receive_hidden, slots_.where(received_slot_), received_, row_bytes, dispatched.hidden,
               context);
  return dispatched;
}

void BatchedAllToAllPrepareFinalize::finalize(const DispatchedTokens& dispatched,
                                              const TensorView& expert_out, WeightAndReduce policy,
                                              const TensorView& out, WorkspaceArena& workspace,
                                              const ExecContext& context) {
  FUSEDMOE_ASSERT(policy == WeightAndReduce::by_finalize, "batched Experts leave weighting to finalize");
  (void)dispatched;
#if FUSEDMOE_WITH_CUDA
  if (device_path_) {
    device_path_->finalize(expert_out, out, context);
    return;
  }
#endif
  const std::int64_t width = out.size(1);
  const auto sent = static_cast<std::int64_t>(sent_token_.count);
  const std::size_t row_bytes = static_cast<std::size_t>(width) * dtype_size(expert_out.dtype());
  // Unweighted expert rows back in arrival order, so they return to their senders.
  const TensorView back = workspace.take(expert_out.dtype(), {received_, width});
  gather_rows(expert_out, slots_.where(received_slot_), received_, row_bytes, back, context);
  const TensorView home = workspace.take(expert_out.dtype(), {sent, width});
  exchange_rows(*communicator_, back.data(), receive_rows_, home.data(), send_rows_, row_bytes,
                context.stream);
  // Home: weight in fp32 and sum in send order (rank, token, slot).
  sum_rows(home,
           RowSum{.weights = sent_weight_.data_as<const float>(),
                  .offsets = plan_.where(token_begin_),
                  .rows = plan_.where(by_token_)},
           out, context);
}

}  // namespace fusedmoe
