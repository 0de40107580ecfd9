// MoeKernel: checks a PrepareFinalize/Experts pair once, then runs forward chunk by chunk.
#include <algorithm>
#include <exception>
#include <limits>
#include <vector>

#include "core/check.hpp"
#include "core/elements.hpp"
#include "core/tensor_checks.hpp"
#include "core/threading.hpp"
#include "fusedmoe/kernel.hpp"
#include "parallel/expert_map.hpp"
#if FUSEDMOE_WITH_CUDA
#include "backends/cuda_common/device_ops.hpp"
#endif

namespace fusedmoe {

namespace {
constexpr std::string_view kComponent = "moe_kernel";
// What a rank with invalid inputs offers in the token agreement: larger than any real count, so the maximum
// every rank receives shows it.
constexpr std::int64_t kInvalidInputs = std::numeric_limits<std::int64_t>::max();

// Rows of expert_out for a problem, by format and policy (see ExpertsModular::apply).
std::vector<std::int64_t> expert_out_shape(const ExpertsProblem& problem, WeightAndReduce policy) {
  if (problem.format == ActivationFormat::batched) {
    return {problem.num_local_experts, problem.num_tokens, problem.hidden_size};
  }
  if (policy == WeightAndReduce::by_experts) return {problem.num_tokens, problem.hidden_size};
  return {problem.num_tokens, problem.top_k, problem.hidden_size};
}

std::int64_t product(const std::vector<std::int64_t>& shape) {
  std::int64_t count = 1;
  for (std::int64_t size : shape) count *= size;
  return count;
}
}  // namespace

MoeKernel::MoeKernel(MoeConfig config, std::unique_ptr<PrepareFinalize> prepare_finalize,
                     std::unique_ptr<Experts> experts, MoeKernelOptions options)
    : config_(std::move(config)),
      prepare_finalize_(std::move(prepare_finalize)),
      experts_(std::move(experts)),
      options_(options) {
  config_.validate();
  FUSEDMOE_CHECK(prepare_finalize_ != nullptr && experts_ != nullptr,
                 "[moe_kernel] needs a PrepareFinalize and an Experts, got a null one");
  FUSEDMOE_CHECK(options_.max_chunk_tokens >= 0,
                 "[moe_kernel] max_chunk_tokens = ", options_.max_chunk_tokens,
                 ": expected >= 0 (0 = no chunking)");
  FUSEDMOE_CHECK(prepare_finalize_->kind() == experts_->kind(), "[moe_kernel] cannot pair ",
                 to_string(prepare_finalize_->kind()), " PrepareFinalize '", prepare_finalize_->name(),
                 "' with ", to_string(experts_->kind()), " Experts '", experts_->name(),
                 "': kinds must match");
  const ParallelConfig& parallel = config_.parallel;
  if (is_expert_parallel(parallel.dispatch)) {
    placement_map_ =
        make_expert_map(config_.num_experts, parallel.ep_size, parallel.ep_rank, parallel.placement);
  }
  if (experts_->kind() == ExpertsKind::modular) {
    const auto& modular = static_cast<const ExpertsModular&>(*experts_);
    FUSEDMOE_CHECK(prepare_finalize_->format() == modular.format(), "[moe_kernel] PrepareFinalize '",
                   prepare_finalize_->name(), "' delivers the ", to_string(prepare_finalize_->format()),
                   " format but Experts '", experts_->name(), "' consume the ", to_string(modular.format()),
                   " format");
    FUSEDMOE_CHECK(modular.format() == ActivationFormat::standard ||
                       modular.weight_and_reduce() == WeightAndReduce::by_finalize,
                   "[moe_kernel] Experts '", experts_->name(),
                   "' consume the batched format and must leave weighting to finalize (by_finalize)");
  }
}

MoeKernel::~MoeKernel() = default;
MoeKernel::MoeKernel(MoeKernel&&) noexcept = default;
MoeKernel& MoeKernel::operator=(MoeKernel&&) noexcept = default;

ExpertsKind MoeKernel::kind() const {
  return experts_->kind();
}

std::size_t MoeKernel::workspace_bytes(std::int64_t num_tokens) const {
  std::int64_t chunk = num_tokens;
  if (options_.max_chunk_tokens > 0) chunk = std::min(chunk, options_.max_chunk_tokens);
  if (experts_->kind() == ExpertsKind::monolithic) {
    const auto& pf = static_cast<const PrepareFinalizeMonolithic&>(*prepare_finalize_);
    const auto& experts = static_cast<const ExpertsMonolithic&>(*experts_);
    std::size_t bytes = pf.workspace_bytes(chunk, config_) + experts.workspace_bytes(chunk);
    if (!pf.experts_write_output_directly()) {
      bytes += WorkspaceArena::bytes_for(config_.act_dtype, chunk * config_.hidden_size);
    }
    return bytes;
  }
  const auto& pf = static_cast<const PrepareFinalizeModular&>(*prepare_finalize_);
  const auto& experts = static_cast<const ExpertsModular&>(*experts_);
  if (pf.max_tokens_per_call() > 0) chunk = std::min(chunk, pf.max_tokens_per_call());
  const ExpertsProblem problem = pf.problem(chunk, config_);
  std::size_t bytes = pf.workspace_bytes(chunk, config_) + experts.workspace_bytes(problem);
  bytes += WorkspaceArena::bytes_for(config_.act_dtype,
                                     product(expert_out_shape(problem, experts.weight_and_reduce())));
  if (applies_weight_on_input(config_.routing.recipe)) {
    bytes += WorkspaceArena::bytes_for(config_.act_dtype, chunk * config_.hidden_size);
    bytes += WorkspaceArena::bytes_for(DType::fp32, chunk * config_.routing.top_k);
  }
  return bytes;
}

void MoeKernel::reserve(std::int64_t num_tokens) {
  const std::size_t bytes = workspace_bytes(num_tokens);
  if (workspace_.defined() && workspace_.nbytes() >= bytes) return;
  workspace_ = Tensor::empty(DType::uint8, {static_cast<std::int64_t>(std::max<std::size_t>(bytes, 1))},
                             config_.device);
}

WorkspaceArena MoeKernel::arena_for(std::int64_t num_tokens) {
  reserve(num_tokens);
  return WorkspaceArena(workspace_.data(), workspace_.nbytes(), config_.device);
}

void MoeKernel::check_forward_inputs(const TensorView& hidden, const TensorView& topk_ids,
                                     const TensorView& topk_weights, const TensorView& expert_map,
                                     const TensorView& out) const {
  const Device device = config_.device;
  const std::int64_t hidden_size = config_.hidden_size;
  const int top_k = config_.routing.top_k;
  check_dtype(kComponent, "hidden", hidden, {config_.act_dtype});
  check_shape(kComponent, "hidden", hidden, {-1, hidden_size});
  check_device(kComponent, "hidden", hidden, device);
  const std::int64_t num_tokens = hidden.size(0);
  check_dtype(kComponent, "out", out, {config_.act_dtype});
  check_shape(kComponent, "out", out, {num_tokens, hidden_size});
  check_device(kComponent, "out", out, device);
  check_dtype(kComponent, "topk_ids", topk_ids, {DType::int32});
  check_shape(kComponent, "topk_ids", topk_ids, {num_tokens, top_k});
  check_device(kComponent, "topk_ids", topk_ids, device);
  check_dtype(kComponent, "topk_weights", topk_weights, {DType::fp32});
  check_shape(kComponent, "topk_weights", topk_weights, {num_tokens, top_k});
  check_device(kComponent, "topk_weights", topk_weights, device);
  // Expert-parallel: the Experts index this rank's weights by the map's local ids, so without a map a global
  // id would index past them; and the dispatch sends each pair to the rank that the placement names, so a
  // map that disagrees with the placement would lose pairs.
  const ParallelConfig& parallel = config_.parallel;
  FUSEDMOE_CHECK(!is_expert_parallel(parallel.dispatch) || expert_map.defined(), "[moe_kernel] rank ",
                 parallel.ep_rank, " of ", parallel.ep_size,
                 " (expert-parallel dispatch) needs expert_map: [num_experts] int32, the local id of each "
                 "global expert this rank holds under parallel.placement and -1 elsewhere (FusedMoeLayer "
                 "passes it; local_expert_ids() lists the held ones)");
  if (expert_map.defined()) {
    check_dtype(kComponent, "expert_map", expert_map, {DType::int32});
    check_shape(kComponent, "expert_map", expert_map, {config_.num_experts});
    check_device(kComponent, "expert_map", expert_map, device);
  }
  // NOTE: on a CUDA device the ids are not read back here (that would wait for the device): there an id
  // outside [0, num_experts), or one the expert map sends outside [-1, num_local_experts), contributes
  // nothing; except under all2all, whose dispatch reads the ids on the host anyway and rejects such an id on
  // every rank (src/parallel/README.md).
  if (device.is_cpu()) {
    // Ids index weight tensors: an out-of-range id is a clear error, never an out-of-bounds read.
    const auto* ids = topk_ids.data_as<const std::int32_t>();
    for (std::int64_t index = 0; index < topk_ids.numel(); ++index) {
      FUSEDMOE_CHECK(ids[index] >= 0 && ids[index] < config_.num_experts, "[moe_kernel] topk_ids[",
                     index / top_k, ", ", index % top_k, "] = ", ids[index],
                     ": expected 0 <= id < num_experts = ", config_.num_experts);
    }
    if (expert_map.defined()) {
      const auto* map = expert_map.data_as<const std::int32_t>();
      const std::int64_t num_local = config_.num_local_experts();
      for (std::int64_t expert = 0; expert < config_.num_experts; ++expert) {
        FUSEDMOE_CHECK(map[expert] >= -1 && map[expert] < num_local, "[moe_kernel] expert_map[", expert,
                       "] = ", map[expert], ": expected -1 (not local) or a local id in [0, ", num_local,
                       ")");
      }
      if (is_expert_parallel(parallel.dispatch)) {
        const auto* want = placement_map_.data_as<const std::int32_t>();
        for (std::int64_t expert = 0; expert < config_.num_experts; ++expert) {
          FUSEDMOE_CHECK(
              map[expert] == want[expert], "[moe_kernel] expert_map[", expert, "] = ", map[expert], ": rank ",
              parallel.ep_rank, " of ", parallel.ep_size, " under ", to_string(parallel.placement),
              " placement holds it as ",
              want[expert] < 0 ? std::string("-1 (another rank's)") : str_cat("local id ", want[expert]),
              " (the dispatch routes by the placement)");
        }
      }
    }
  }
}

void MoeKernel::abandon_forward(std::exception_ptr error, const ExecContext& context) {
  if (is_expert_parallel(config_.parallel.dispatch) && kind() == ExpertsKind::modular) {
    auto& pf = static_cast<PrepareFinalizeModular&>(*prepare_finalize_);
    try {
      (void)pf.agree_num_tokens(kInvalidInputs, context);
    } catch (const Error&) {  // this rank's own error says more
    }
  }
  std::rethrow_exception(error);
}

void MoeKernel::forward(const TensorView& hidden, const TensorView& topk_ids, const TensorView& topk_weights,
                        const TensorView& expert_map, const ExpertWeights& weights, const TensorView& out,
                        const ExecContext& context) {
  FUSEDMOE_CHECK(kind() == ExpertsKind::modular,
                 "[moe_kernel] forward() with top-k ids needs modular Experts; '", experts_->name(),
                 "' is monolithic: call forward_monolithic() with router logits");
  // Expert-parallel ranks fail together: a rank whose inputs are invalid tells the others through the token
  // agreement (the first collective of a forward), so that no rank is left waiting in a later one.
  std::exception_ptr invalid;
  try {
    check_forward_inputs(hidden, topk_ids, topk_weights, expert_map, out);
  } catch (const Error&) {
    if (!is_expert_parallel(config_.parallel.dispatch)) throw;
    invalid = std::current_exception();
  }
  const std::int64_t num_tokens = invalid ? kInvalidInputs : hidden.size(0);
  auto& pf = static_cast<PrepareFinalizeModular&>(*prepare_finalize_);
  // Expert-parallel: every rank runs as many chunks as the rank with the most tokens (collectives match).
  std::int64_t agreed_tokens = 0;
  try {
    agreed_tokens = pf.agree_num_tokens(num_tokens, context);
  } catch (const Error&) {
    if (invalid) std::rethrow_exception(invalid);  // this rank's own error says more
    throw;
  }
  if (invalid) std::rethrow_exception(invalid);
  FUSEDMOE_CHECK(agreed_tokens != kInvalidInputs,
                 "[moe_kernel] another expert-parallel rank rejected its inputs (its error says why); every "
                 "rank stops here");
  if (agreed_tokens == 0) return;

  std::int64_t chunk = agreed_tokens;
  if (options_.max_chunk_tokens > 0) chunk = std::min(chunk, options_.max_chunk_tokens);
  if (pf.max_tokens_per_call() > 0) chunk = std::min(chunk, pf.max_tokens_per_call());
  // A dispatch with a fixed per-call size (the batched ones) gets the workspace of a full chunk on the first
  // forward: a later CUDA-graph capture, whose ranks agree on full chunks, then allocates nothing.
  std::int64_t reserved = chunk;
  if (pf.max_tokens_per_call() > 0) {
    std::int64_t full = pf.max_tokens_per_call();
    if (options_.max_chunk_tokens > 0) full = std::min(full, options_.max_chunk_tokens);
    reserved = std::max(reserved, full);
  }
  reserve(reserved);
  for (std::int64_t begin = 0; begin < agreed_tokens; begin += chunk) {
    const std::int64_t local_begin = std::min(num_tokens, begin);
    const std::int64_t local_end = std::min(num_tokens, begin + chunk);
    forward_chunk(hidden.slice_rows(local_begin, local_end), topk_ids.slice_rows(local_begin, local_end),
                  topk_weights.slice_rows(local_begin, local_end), expert_map, weights,
                  out.slice_rows(local_begin, local_end), context);
  }
}

void MoeKernel::forward_chunk(const TensorView& hidden, const TensorView& topk_ids,
                              const TensorView& topk_weights, const TensorView& expert_map,
                              const ExpertWeights& weights, const TensorView& out,
                              const ExecContext& context) {
  auto& pf = static_cast<PrepareFinalizeModular&>(*prepare_finalize_);
  auto& experts = static_cast<ExpertsModular&>(*experts_);
  const std::int64_t num_tokens = hidden.size(0);
  WorkspaceArena arena = arena_for(num_tokens);

  TensorView expert_input = hidden;
  TensorView expert_weights = topk_weights;
  if (applies_weight_on_input(config_.routing.recipe)) {
    // Llama-4: the (single) routing weight scales the input; the experts then see weight 1.
    const std::int64_t hidden_size = config_.hidden_size;
    const int top_k = config_.routing.top_k;
    expert_input = arena.take(config_.act_dtype, {num_tokens, hidden_size});
    expert_weights = arena.take(DType::fp32, {num_tokens, static_cast<std::int64_t>(top_k)});
    if (config_.device.is_cuda()) {
#if FUSEDMOE_WITH_CUDA
      cuda::scale_by_routing_weight(hidden, topk_weights, expert_input, expert_weights, context);
#endif
    } else {
      const float* routing_weight = topk_weights.data_as<const float>();
      for (std::int64_t token = 0; token < num_tokens; ++token) {
        const float scale = routing_weight[token * top_k];
        for (std::int64_t column = 0; column < hidden_size; ++column) {
          const std::int64_t index = token * hidden_size + column;
          store_element(expert_input.data(), config_.act_dtype, index,
                        scale * load_element(hidden.data(), config_.act_dtype, index));
        }
        for (int slot = 0; slot < top_k; ++slot) expert_weights.data_as<float>()[token * top_k + slot] = 1.0f;
      }
    }
  }

  const DispatchedTokens dispatched =
      pf.prepare(expert_input, topk_ids, expert_weights, expert_map, arena, context);
  const WeightAndReduce policy = experts.weight_and_reduce();
  // The rows that actually arrived (expert-parallel dispatch delivers more or fewer than were sent).
  ExpertsProblem problem = pf.problem(num_tokens, config_);
  problem.num_tokens =
      dispatched.format == ActivationFormat::batched ? dispatched.hidden.size(1) : dispatched.hidden.size(0);
  TensorView expert_out;
  if (policy == WeightAndReduce::by_experts && pf.experts_write_output_directly()) {
    expert_out = out;
  } else {
    const std::vector<std::int64_t> shape = expert_out_shape(problem, policy);
    expert_out = arena.take(config_.act_dtype, shape);
  }
  experts.apply(dispatched, weights, expert_out, arena, context);
  pf.finalize(dispatched, expert_out, policy, out, arena, context);
}

void MoeKernel::forward_monolithic(const TensorView& hidden, const TensorView& router_logits,
                                   const TensorView& correction_bias, const ExpertWeights& weights,
                                   const TensorView& out, const ExecContext& context) {
  FUSEDMOE_CHECK(kind() == ExpertsKind::monolithic,
                 "[moe_kernel] forward_monolithic() needs monolithic Experts; '", experts_->name(),
                 "' is modular: route first, then call forward() with top-k ids");
  const Device device = config_.device;
  check_dtype(kComponent, "hidden", hidden, {config_.act_dtype});
  check_shape(kComponent, "hidden", hidden, {-1, config_.hidden_size});
  check_device(kComponent, "hidden", hidden, device);
  const std::int64_t num_tokens = hidden.size(0);
  check_shape(kComponent, "router_logits", router_logits, {num_tokens, config_.num_experts});
  check_dtype(kComponent, "router_logits", router_logits, {DType::fp32, DType::bf16, DType::fp16});
  check_device(kComponent, "router_logits", router_logits, device);
  check_dtype(kComponent, "out", out, {config_.act_dtype});
  check_shape(kComponent, "out", out, {num_tokens, config_.hidden_size});
  check_device(kComponent, "out", out, device);
  if (num_tokens == 0) return;

  auto& pf = static_cast<PrepareFinalizeMonolithic&>(*prepare_finalize_);
  auto& experts = static_cast<ExpertsMonolithic&>(*experts_);
  std::int64_t chunk = num_tokens;
  if (options_.max_chunk_tokens > 0) chunk = std::min(chunk, options_.max_chunk_tokens);
  reserve(chunk);
  for (std::int64_t begin = 0; begin < num_tokens; begin += chunk) {
    const std::int64_t end = std::min(num_tokens, begin + chunk);
    WorkspaceArena arena = arena_for(end - begin);
    const TensorView out_chunk = out.slice_rows(begin, end);
    const auto prepared =
        pf.prepare(hidden.slice_rows(begin, end), router_logits.slice_rows(begin, end), arena, context);
    const TensorView expert_out =
        pf.experts_write_output_directly()
            ? out_chunk
            : arena.take(config_.act_dtype, {prepared.hidden.size(0), config_.hidden_size});
    experts.apply(prepared.hidden, prepared.router_logits, correction_bias, weights, expert_out, arena,
                  context);
    pf.finalize(expert_out, out_chunk, context);
  }
}

}  // namespace fusedmoe
