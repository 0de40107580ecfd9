// FusedMoeLayer: validates weights, asks the oracle, converts weights once, runs router + kernel
// + shared experts.
#include "fusedmoe/layer.hpp"

#include <cmath>
#include <utility>

#include "core/check.hpp"
#include "core/elements.hpp"
#include "core/env.hpp"
#include "core/tensor_checks.hpp"
#include "core/threading.hpp"
#include "fusedmoe/log.hpp"
#include "fusedmoe/router.hpp"
#include "layer/router_gate.hpp"
#include "parallel/expert_map.hpp"
#if FUSEDMOE_WITH_CUDA
#include "backends/cuda_common/device_ops.hpp"
#endif

namespace fusedmoe {

namespace {
constexpr std::string_view kComponent = "layer";

// ---- the layer's dense helpers, on the device their tensors live on (the same arithmetic on either) ----

// out [M, R] fp32 = hidden [M, H] . weight [R, H]^T.
void linear_on_device(const TensorView& hidden, const TensorView& weight, const TensorView& out,
                      const ExecContext& context) {
#if FUSEDMOE_WITH_CUDA
  if (hidden.device().is_cuda()) return cuda::linear_fp32(hidden, weight, out, context);
#endif
  linear_fp32(hidden, weight, out, resolve_num_threads(context));
}

// Shared experts' routing: ids[t, s] = s, weights[t, s] = sigmoid(gate_logits[t]) (or 1 without a gate).
void shared_experts_routing(const TensorView& gate_logits, const TensorView& ids, const TensorView& weights,
                            const ExecContext& context) {
#if FUSEDMOE_WITH_CUDA
  if (ids.device().is_cuda()) return cuda::shared_experts_routing(gate_logits, ids, weights, context);
#else
  (void)context;
#endif
  const std::int64_t num_tokens = ids.size(0), count = ids.size(1);
  auto* id_values = ids.data_as<std::int32_t>();
  auto* weight_values = weights.data_as<float>();
  for (std::int64_t token = 0; token < num_tokens; ++token) {
    const float gate =
        gate_logits.defined() ? 1.0f / (1.0f + std::exp(-gate_logits.data_as<const float>()[token])) : 1.0f;
    for (std::int64_t slot = 0; slot < count; ++slot) {
      id_values[token * count + slot] = static_cast<std::int32_t>(slot);
      weight_values[token * count + slot] = gate;
    }
  }
}

// out += addend, in float, rounded into out's dtype.
void add_in_place(const TensorView& out, const TensorView& addend, const ExecContext& context) {
#if FUSEDMOE_WITH_CUDA
  if (out.device().is_cuda()) return cuda::add_in_place(out, addend, context);
#else
  (void)context;
#endif
  for (std::int64_t index = 0; index < out.numel(); ++index) {
    store_element(
        out.data(), out.dtype(), index,
        load_element(out.data(), out.dtype(), index) + load_element(addend.data(), addend.dtype(), index));
  }
}

// The tensor on `device` (itself when it is there already; a copy otherwise).
Tensor on_device(const Tensor& tensor, Device device) {
  if (!tensor.defined() || tensor.device() == device) return tensor;
  Tensor copy = Tensor::empty(tensor.dtype(), tensor.shape(), device);
  copy_tensor(tensor, copy);
  return copy;
}

// One selected backend with its converted weights and composed kernel.
struct Executor {
  Selection selection;
  std::shared_ptr<const ExpertWeights> weights;
  std::unique_ptr<MoeKernel> kernel;
};

Executor build_executor(const MoeConfig& config, const Platform& platform, const SelectionOptions& choice,
                        const Tensor& w13, const Tensor& w2, std::int64_t max_chunk_tokens,
                        std::shared_ptr<Communicator> communicator) {
  Executor executor;
  executor.selection = select_backend(config, platform, choice);
  const BackendInfo& info = *executor.selection.backend;
  executor.weights = info.convert_weights(w13, w2, config);
  std::unique_ptr<Experts> experts = info.make_experts(config);
  std::unique_ptr<PrepareFinalize> prepare_finalize;
  if (info.kind == ExpertsKind::monolithic) {
    prepare_finalize = make_prepare_finalize_monolithic(config);
  } else {
    prepare_finalize = make_prepare_finalize(config, std::move(communicator));
  }
  executor.kernel = std::make_unique<MoeKernel>(config, std::move(prepare_finalize), std::move(experts),
                                                MoeKernelOptions{.max_chunk_tokens = max_chunk_tokens});
  return executor;
}

// The shared experts as an MoE of `count` experts that every token visits with weight 1 (or its gate).
MoeConfig shared_experts_config(const MoeConfig& config) {
  MoeConfig shared;
  shared.num_experts = config.shared.count;
  shared.hidden_size = config.hidden_size;
  shared.intermediate_size = config.shared.intermediate_size;
  shared.activation = config.activation;
  shared.weight_dtype = config.weight_dtype;
  shared.act_dtype = config.act_dtype;
  shared.routing = RoutingConfig{.recipe = RoutingRecipe::softmax_topk, .top_k = config.shared.count};
  shared.device = config.device;
  return shared;
}

// How the shared experts' backend is chosen. They run as an MoE that every token visits, fed top-k ids in
// the standard format: only modular backends serve them. LayerOptions::shared_experts_backend forces one
// (strictly); else FUSEDMOE_BACKEND forces one where it can serve them (it is meant for the routed experts,
// and may name a monolithic or batched-only backend); else the oracle chooses.
SelectionOptions shared_experts_choice(const MoeConfig& shared, const Platform& platform,
                                       const std::optional<std::string>& explicit_id) {
  SelectionOptions choice{
      .override_id = explicit_id, .override_from_env = false, .kind = ExpertsKind::modular};
  if (explicit_id) return choice;
  if (const std::optional<std::string> from_env = env_string("FUSEDMOE_BACKEND")) {
    const BackendInfo* backend = find_backend(*from_env);
    const bool serves = backend != nullptr && backend->kind == ExpertsKind::modular &&
                        backend->device_kind == shared.device.kind &&
                        backend->supports(shared, platform, ActivationFormat::standard).ok;
    if (serves) {
      choice.override_id = from_env;
    } else {
      log(LogLevel::info, str_cat("[layer] FUSEDMOE_BACKEND=", *from_env,
                                  " cannot run the shared experts: the oracle chooses their backend"));
    }
  }
  return choice;
}

// FNV-1a: a short fingerprint of the configuration for the start-up handshake.
std::int64_t fingerprint_hash(const std::string& text) {
  std::uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : text) hash = (hash ^ c) * 1099511628211ull;
  return static_cast<std::int64_t>(hash);
}

// Every rank must hold the same configuration; otherwise every rank fails with the same kind of message.
void check_ranks_agree(const MoeConfig& config, Communicator& communicator) {
  // Ranks may drive different devices of one kind (cuda:0, cuda:1): the index is not part of the agreement.
  MoeConfig shared = config;
  shared.device.index = 0;
  const std::string mine = shared.fingerprint();
  std::vector<std::int64_t> hashes(static_cast<std::size_t>(communicator.size()));
  communicator.all_gather_int64(fingerprint_hash(mine), hashes);
  std::string differing;
  for (int rank = 0; rank < communicator.size(); ++rank) {
    if (hashes[rank] != hashes[0]) append_joined(differing, ", ", std::to_string(rank));
  }
  if (differing.empty()) return;
  throw InvalidArgument(
      str_cat("[ep] the ranks disagree on the layer configuration: rank(s) ", differing,
              " differ from rank 0. This rank (", communicator.rank(), ") has: ", mine,
              ". Every rank must build the layer with the same MoeConfig (only ep_rank differs)."));
}
}  // namespace

struct FusedMoeLayer::State {
  MoeConfig config;
  LayerOptions options;
  MoeWeights weights;
  bool has_weights = false;
  Tensor router_gate_fp32;  // [E, H] for forward(hidden, out)
  Tensor shared_gate_fp32;  // [1, H]
  Tensor correction_bias;   // [E] on config.device (the given one, or a copy)
  std::optional<Executor> routed;
  Tensor expert_map;  // [E] global -> local with expert parallelism
  std::optional<Executor> shared;
  // Per-call buffers, grown by reserve() only.
  std::int64_t reserved_tokens = -1;
  Tensor logits, topk_ids, topk_weights, shared_out, shared_ids, shared_weights, shared_gate_logits;
};

FusedMoeLayer::FusedMoeLayer(MoeConfig config, LayerOptions options) : state_(std::make_unique<State>()) {
  config.validate();
  FUSEDMOE_CHECK(options.max_chunk_tokens >= 0, "[layer] max_chunk_tokens = ", options.max_chunk_tokens,
                 ": expected >= 0 (0 = no chunking)");
  state_->config = std::move(config);
  state_->options = std::move(options);
  const ParallelConfig& parallel = state_->config.parallel;
  if (is_expert_parallel(parallel.dispatch)) {
    state_->expert_map =
        make_expert_map(state_->config.num_experts, parallel.ep_size, parallel.ep_rank, parallel.placement);
  }
}

std::vector<std::int32_t> FusedMoeLayer::local_expert_ids() const {
  const MoeConfig& config = state().config;
  return local_experts(config.num_experts, config.parallel.ep_size, config.parallel.ep_rank,
                       config.parallel.placement);
}

FusedMoeLayer::~FusedMoeLayer() = default;

// A moved-from layer has no state; every call on it says so instead of dereferencing null.
const FusedMoeLayer::State& FusedMoeLayer::state() const {
  FUSEDMOE_CHECK(
      state_ != nullptr,
      "[layer] this FusedMoeLayer was moved from: use the layer it was moved into, or assign a new "
      "one to it");
  return *state_;
}
FusedMoeLayer::State& FusedMoeLayer::state() {
  return const_cast<State&>(std::as_const(*this).state());
}

FusedMoeLayer::FusedMoeLayer(FusedMoeLayer&&) noexcept = default;
FusedMoeLayer& FusedMoeLayer::operator=(FusedMoeLayer&&) noexcept = default;

const MoeConfig& FusedMoeLayer::config() const {
  return state().config;
}
const MoeWeights& FusedMoeLayer::weights() const {
  return state().weights;
}
bool FusedMoeLayer::finalized() const {
  return state().routed.has_value();
}

void FusedMoeLayer::set_weights(MoeWeights weights) {
  const MoeConfig& config = state().config;
  const std::int64_t experts = config.num_local_experts();
  const std::int64_t hidden = config.hidden_size;
  const std::int64_t intermediate = config.intermediate_size;
  const Device device = config.device;
  check_shape(kComponent, "w13", weights.w13, {experts, 2 * intermediate, hidden});
  check_shape(kComponent, "w2", weights.w2, {experts, hidden, intermediate});
  for (const auto& [name, tensor] :
       {std::pair<const char*, const Tensor&>{"w13", weights.w13}, {"w2", weights.w2}}) {
    check_dtype(kComponent, name, tensor, {config.weight_dtype});
    check_device(kComponent, name, tensor, device);
  }
  if (weights.router_gate.defined()) {
    check_shape(kComponent, "router_gate", weights.router_gate, {config.num_experts, hidden});
    check_dtype(kComponent, "router_gate", weights.router_gate, {DType::fp32, DType::bf16, DType::fp16});
    check_device(kComponent, "router_gate", weights.router_gate, Device::cpu());
  }
  if (config.routing.use_correction_bias) {
    check_shape(kComponent, "correction_bias", weights.correction_bias, {config.num_experts});
    check_dtype(kComponent, "correction_bias", weights.correction_bias, {DType::fp32});
  } else {
    FUSEDMOE_CHECK(!weights.correction_bias.defined(), "[layer] a correction_bias was given but the routing ",
                   "config has use_correction_bias = false");
  }
  if (config.shared.count > 0) {
    const std::int64_t count = config.shared.count;
    const std::int64_t shared_intermediate = config.shared.intermediate_size;
    check_shape(kComponent, "shared_w13", weights.shared_w13, {count, 2 * shared_intermediate, hidden});
    check_dtype(kComponent, "shared_w13", weights.shared_w13, {config.weight_dtype});
    check_device(kComponent, "shared_w13", weights.shared_w13, device);
    check_shape(kComponent, "shared_w2", weights.shared_w2, {count, hidden, shared_intermediate});
    check_dtype(kComponent, "shared_w2", weights.shared_w2, {config.weight_dtype});
    check_device(kComponent, "shared_w2", weights.shared_w2, device);
  } else {
    FUSEDMOE_CHECK(!weights.shared_w13.defined() && !weights.shared_w2.defined(),
                   "[layer] shared-expert weights were given but the config has shared.count = 0");
  }
  if (config.shared.sigmoid_gate) {
    check_shape(kComponent, "shared_gate", weights.shared_gate, {1, hidden});
    check_dtype(kComponent, "shared_gate", weights.shared_gate, {DType::fp32, DType::bf16, DType::fp16});
    check_device(kComponent, "shared_gate", weights.shared_gate, Device::cpu());
  } else {
    FUSEDMOE_CHECK(!weights.shared_gate.defined(),
                   "[layer] a shared_gate was given but the config has shared.sigmoid_gate = false");
  }
  state().weights = std::move(weights);
  state().has_weights = true;
  state().routed.reset();  // new weights need a new finalize_weights()
  state().shared.reset();
}

void FusedMoeLayer::finalize_weights() {
  finalize_weights(Platform::detect(state().config.device));
}

void FusedMoeLayer::finalize_weights(const Platform& platform) {
  State& s = state();
  FUSEDMOE_CHECK(s.has_weights, "[layer] finalize_weights() before set_weights(): load the weights first");
  if (is_expert_parallel(s.config.parallel.dispatch)) {
    FUSEDMOE_CHECK(s.options.communicator != nullptr, "[layer] dispatch ",
                   to_string(s.config.parallel.dispatch),
                   " needs LayerOptions::communicator (e.g. make_mpi_world_communicator())");
    check_ranks_agree(s.config, *s.options.communicator);
  }
  // Built aside and committed together: a failure leaves the layer as it was (not half finalized).
  std::optional<Executor> routed =
      build_executor(s.config, platform, SelectionOptions{.override_id = s.options.backend}, s.weights.w13,
                     s.weights.w2, s.options.max_chunk_tokens, s.options.communicator);
  std::optional<Executor> shared;
  if (s.config.shared.count > 0) {
    const MoeConfig shared_config = shared_experts_config(s.config);
    try {
      shared =
          build_executor(shared_config, platform,
                         shared_experts_choice(shared_config, platform, s.options.shared_experts_backend),
                         s.weights.shared_w13, s.weights.shared_w2, s.options.max_chunk_tokens, nullptr);
    } catch (const Unsupported& error) {
      throw Unsupported(str_cat("[layer] shared experts: ", error.what()));
    } catch (const InvalidArgument& error) {
      throw InvalidArgument(str_cat("[layer] shared experts: ", error.what()));
    }
  }
  // The router and shared-gate weights (given on the CPU) and the bias move to the layer's device once.
  const Device device = s.config.device;
  Tensor router_gate_fp32, shared_gate_fp32;
  if (s.weights.router_gate.defined()) {
    router_gate_fp32 = on_device(s.weights.router_gate.to_dtype(DType::fp32), device);
  }
  if (s.weights.shared_gate.defined()) {
    shared_gate_fp32 = on_device(s.weights.shared_gate.to_dtype(DType::fp32), device);
  }
  Tensor correction_bias = on_device(s.weights.correction_bias, device);
  Tensor expert_map = on_device(s.expert_map, device);  // the kernel reads it where the tensors live
  s.routed = std::move(routed);
  s.shared = std::move(shared);
  s.router_gate_fp32 = std::move(router_gate_fp32);
  s.shared_gate_fp32 = std::move(shared_gate_fp32);
  s.correction_bias = std::move(correction_bias);
  s.expert_map = std::move(expert_map);
  s.reserved_tokens = -1;
}

const Selection& FusedMoeLayer::selection() const {
  FUSEDMOE_CHECK(finalized(), "[layer] selection() before finalize_weights()");
  return state().routed->selection;
}

const Selection* FusedMoeLayer::shared_experts_selection() const {
  return state().shared ? &state().shared->selection : nullptr;
}

void FusedMoeLayer::reserve(std::int64_t num_tokens) {
  State& s = state();
  FUSEDMOE_CHECK(finalized(), "[layer] reserve() before finalize_weights()");
  FUSEDMOE_CHECK(num_tokens >= 0, "[layer] reserve(", num_tokens, "): expected >= 0 tokens");
  if (num_tokens <= s.reserved_tokens) return;
  const std::int64_t rows = std::max<std::int64_t>(num_tokens, 1);
  const std::int64_t top_k = s.config.routing.top_k;
  const Device device = s.config.device;
  s.logits = Tensor::empty(DType::fp32, {rows, s.config.num_experts}, device);
  s.topk_ids = Tensor::empty(DType::int32, {rows, top_k}, device);
  s.topk_weights = Tensor::empty(DType::fp32, {rows, top_k}, device);
  s.routed->kernel->reserve(num_tokens);
  if (s.shared) {
    const std::int64_t count = s.config.shared.count;
    s.shared_out = Tensor::empty(s.config.act_dtype, {rows, s.config.hidden_size}, s.config.device);
    s.shared_ids = Tensor::empty(DType::int32, {rows, count}, device);
    s.shared_weights = Tensor::empty(DType::fp32, {rows, count}, device);
    s.shared_gate_logits = Tensor::empty(DType::fp32, {rows, 1}, device);
    s.shared->kernel->reserve(num_tokens);
  }
  s.reserved_tokens = num_tokens;
}

void FusedMoeLayer::compute_router_logits(const TensorView& hidden, const TensorView& logits,
                                          const ExecContext& context) const {
  const State& s = state();
  FUSEDMOE_CHECK(s.router_gate_fp32.defined(),
                 "[layer] no router_gate weight: set MoeWeights::router_gate and ",
                 "finalize_weights(), or pass router logits to forward()");
  check_shape(kComponent, "hidden", hidden, {-1, s.config.hidden_size});
  check_dtype(kComponent, "hidden", hidden, {s.config.act_dtype});
  check_device(kComponent, "hidden", hidden, s.config.device);
  check_shape(kComponent, "router_logits", logits, {hidden.size(0), s.config.num_experts});
  check_dtype(kComponent, "router_logits", logits, {DType::fp32});
  check_device(kComponent, "router_logits", logits, s.config.device);
  linear_on_device(hidden, s.router_gate_fp32, logits, context);
}

void FusedMoeLayer::forward(const TensorView& hidden, const TensorView& out, const ExecContext& context,
                            const RoutingOutputs& routing) {
  FUSEDMOE_CHECK(finalized(), "[layer] forward() before finalize_weights()");
  TensorView logits;
  try {
    check_shape(kComponent, "hidden", hidden, {-1, state().config.hidden_size});
    reserve(hidden.size(0));
    logits = state().logits.view().slice_rows(0, hidden.size(0));
    compute_router_logits(hidden, logits, context);
  } catch (const Error&) {  // with expert parallelism the other ranks stop too
    state().routed->kernel->abandon_forward(std::current_exception(), context);
  }
  forward(hidden, logits, out, context, routing);
}

void FusedMoeLayer::forward(const TensorView& hidden, const TensorView& router_logits, const TensorView& out,
                            const ExecContext& context, const RoutingOutputs& routing) {
  State& s = state();
  FUSEDMOE_CHECK(finalized(), "[layer] forward() before finalize_weights()");
  const MoeConfig& config = s.config;
  MoeKernel& kernel = *s.routed->kernel;
  const TensorView bias = config.routing.use_correction_bias ? s.correction_bias.view() : TensorView{};
  TensorView ids, weights;  // the routing, where the Experts or the caller want it
  TensorView shared_out;    // the shared experts' output, added to the routed one
  // Checks the inputs, sizes the workspaces, routes and runs the shared experts; false: nothing to run (no
  // tokens on one rank).
  const auto prepare = [&]() -> bool {
    check_dtype(kComponent, "hidden", hidden, {config.act_dtype});
    check_shape(kComponent, "hidden", hidden, {-1, config.hidden_size});
    check_device(kComponent, "hidden", hidden, config.device);
    const std::int64_t num_tokens = hidden.size(0);
    check_shape(kComponent, "router_logits", router_logits, {num_tokens, config.num_experts});
    check_device(kComponent, "router_logits", router_logits, config.device);
    check_shape(kComponent, "out", out, {num_tokens, config.hidden_size});
    check_dtype(kComponent, "out", out, {config.act_dtype});
    check_device(kComponent, "out", out, config.device);
    const std::int64_t top_k = config.routing.top_k;
    if (routing.topk_ids.defined())
      check_shape(kComponent, "routing.topk_ids", routing.topk_ids, {num_tokens, top_k});
    if (routing.topk_weights.defined()) {
      check_shape(kComponent, "routing.topk_weights", routing.topk_weights, {num_tokens, top_k});
    }
    reserve(num_tokens);
    // Expert-parallel ranks take part in every collective even with no tokens of their own.
    if (num_tokens == 0 && !is_expert_parallel(config.parallel.dispatch)) return false;
    if (kernel.kind() == ExpertsKind::modular || routing.topk_ids.defined() ||
        routing.topk_weights.defined()) {
      ids = routing.topk_ids.defined() ? routing.topk_ids : s.topk_ids.view().slice_rows(0, num_tokens);
      weights = routing.topk_weights.defined() ? routing.topk_weights
                                               : s.topk_weights.view().slice_rows(0, num_tokens);
      route(router_logits, config.routing, bias, ids, weights, context);
    }
    // The shared experts run before the routed ones, which may write `out` over `hidden` (in place).
    if (s.shared && num_tokens > 0) {
      const TensorView shared_ids = s.shared_ids.view().slice_rows(0, num_tokens);
      const TensorView shared_weights = s.shared_weights.view().slice_rows(0, num_tokens);
      TensorView gate_logits;  // undefined: weight 1
      if (config.shared.sigmoid_gate) {
        gate_logits = s.shared_gate_logits.view().slice_rows(0, num_tokens);
        linear_on_device(hidden, s.shared_gate_fp32, gate_logits, context);
      }
      shared_experts_routing(gate_logits, shared_ids, shared_weights, context);
      shared_out = s.shared_out.view().slice_rows(0, num_tokens);
      s.shared->kernel->forward(hidden, shared_ids, shared_weights, TensorView{}, *s.shared->weights,
                                shared_out, context);
    }
    return true;
  };
  // Expert-parallel ranks fail together: a check that fails here, before the kernel's token agreement, is
  // offered to the other ranks through that agreement (abandon_forward), so that none waits for this rank.
  bool run = false;
  try {
    run = prepare();
  } catch (const Error&) {
    kernel.abandon_forward(std::current_exception(), context);
  }
  if (!run) return;
  if (kernel.kind() == ExpertsKind::modular) {
    kernel.forward(hidden, ids, weights, s.expert_map, *s.routed->weights, out, context);
  } else {
    kernel.forward_monolithic(hidden, router_logits, bias, *s.routed->weights, out, context);
  }
  if (shared_out.defined()) add_in_place(out, shared_out, context);
}

}  // namespace fusedmoe
