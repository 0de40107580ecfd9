// MoeConfig validation and the names of its enums.
#include "fusedmoe/config.hpp"

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>

#include "core/check.hpp"
#include "fusedmoe/router.hpp"

namespace fusedmoe {

namespace {
template <class Enum, std::size_t N>
Enum parse_enum(std::string_view what, std::string_view name, const std::array<Enum, N>& values) {
  std::string allowed;
  for (Enum value : values) {
    if (name == to_string(value)) return value;
    append_joined(allowed, ", ", to_string(value));
  }
  throw InvalidArgument(str_cat("[config] unknown ", what, " '", name, "': expected one of ", allowed));
}

constexpr std::array kRecipes = {RoutingRecipe::softmax_topk,         RoutingRecipe::softmax_topk_renorm,
                                 RoutingRecipe::topk_softmax,         RoutingRecipe::softmax_grouped,
                                 RoutingRecipe::sigmoid_grouped_bias, RoutingRecipe::llama4_top1_sigmoid};

// Whether `experts` experts' [2 I, H] weights in fp64 (the widest any backend keeps) have a byte count that
// int64 holds, so that no shape or offset product wraps (sizes are positive here).
bool weight_bytes_fit(std::int64_t experts, std::int64_t intermediate, std::int64_t hidden) {
  if (experts <= 0 || intermediate <= 0 || hidden <= 0) return true;  // reported by their own checks
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  std::int64_t bytes = 16;  // 2 I, 8 bytes an element
  for (const std::int64_t factor : {experts, intermediate, hidden}) {
    if (bytes > kMax / factor) return false;
    bytes *= factor;
  }
  return true;
}
}  // namespace

std::string_view to_string(Activation activation) {
  return activation == Activation::silu ? "silu" : "gelu";
}

std::string_view to_string(RoutingRecipe recipe) {
  switch (recipe) {
    case RoutingRecipe::softmax_topk:
      return "softmax_topk";
    case RoutingRecipe::softmax_topk_renorm:
      return "softmax_topk_renorm";
    case RoutingRecipe::topk_softmax:
      return "topk_softmax";
    case RoutingRecipe::softmax_grouped:
      return "softmax_grouped";
    case RoutingRecipe::sigmoid_grouped_bias:
      return "sigmoid_grouped_bias";
    case RoutingRecipe::llama4_top1_sigmoid:
      return "llama4_top1_sigmoid";
  }
  return "?";
}

std::string_view to_string(DispatchMode mode) {
  switch (mode) {
    case DispatchMode::local:
      return "local";
    case DispatchMode::local_batched:
      return "local_batched";
    case DispatchMode::allgather:
      return "allgather";
    case DispatchMode::all2all:
      return "all2all";
    case DispatchMode::all2all_batched:
      return "all2all_batched";
  }
  return "?";
}
std::string_view to_string(ExpertPlacement placement) {
  return placement == ExpertPlacement::linear ? "linear" : "round_robin";
}

Activation parse_activation(std::string_view name) {
  return parse_enum("activation", name, std::array{Activation::silu, Activation::gelu});
}
RoutingRecipe parse_routing_recipe(std::string_view name) {
  return parse_enum("routing recipe", name, kRecipes);
}
DispatchMode parse_dispatch_mode(std::string_view name) {
  return parse_enum("dispatch mode", name,
                    std::array{DispatchMode::local, DispatchMode::local_batched, DispatchMode::allgather,
                               DispatchMode::all2all, DispatchMode::all2all_batched});
}
ExpertPlacement parse_placement(std::string_view name) {
  return parse_enum("placement", name, std::array{ExpertPlacement::linear, ExpertPlacement::round_robin});
}
bool is_expert_parallel(DispatchMode mode) {
  return mode == DispatchMode::allgather || mode == DispatchMode::all2all ||
         mode == DispatchMode::all2all_batched;
}

bool applies_weight_on_input(RoutingRecipe recipe) {
  return recipe == RoutingRecipe::llama4_top1_sigmoid;
}
bool is_grouped(RoutingRecipe recipe) {
  return recipe == RoutingRecipe::softmax_grouped || recipe == RoutingRecipe::sigmoid_grouped_bias;
}

void MoeConfig::validate() const {
  FUSEDMOE_CHECK(num_experts > 0, "[config] num_experts = ", num_experts, ": expected > 0");
  FUSEDMOE_CHECK(num_experts <= (1 << 20), "[config] num_experts = ", num_experts, ": expected <= 1048576");
  FUSEDMOE_CHECK(hidden_size > 0, "[config] hidden_size = ", hidden_size, ": expected > 0");
  FUSEDMOE_CHECK(intermediate_size > 0, "[config] intermediate_size = ", intermediate_size, ": expected > 0");
  FUSEDMOE_CHECK(is_floating(weight_dtype), "[config] weight_dtype = ", to_string(weight_dtype),
                 ": expected bf16, fp16 or fp32");
  FUSEDMOE_CHECK(is_floating(act_dtype), "[config] act_dtype = ", to_string(act_dtype),
                 ": expected bf16, fp16 or fp32");
  FUSEDMOE_CHECK(weight_bytes_fit(num_experts, intermediate_size, hidden_size),
                 "[config] num_experts = ", num_experts, ", intermediate_size = ", intermediate_size,
                 ", hidden_size = ", hidden_size,
                 ": the expert weights [E, 2 I, H] would have more bytes than 64 bits count");
  validate_routing(routing, num_experts);
  FUSEDMOE_CHECK(shared.count >= 0, "[config] shared.count = ", shared.count, ": expected >= 0");
  if (shared.count > 0) {
    FUSEDMOE_CHECK(shared.intermediate_size > 0,
                   "[config] shared.intermediate_size = ", shared.intermediate_size,
                   ": expected > 0 when shared.count = ", shared.count);
    FUSEDMOE_CHECK(weight_bytes_fit(shared.count, shared.intermediate_size, hidden_size),
                   "[config] shared.count = ", shared.count,
                   ", shared.intermediate_size = ", shared.intermediate_size, ", hidden_size = ", hidden_size,
                   ": the shared experts' weights would have more bytes than 64 bits count");
  } else {
    FUSEDMOE_CHECK(!shared.sigmoid_gate, "[config] shared.sigmoid_gate is set but shared.count = 0");
  }
  FUSEDMOE_CHECK(parallel.ep_size >= 1, "[config] parallel.ep_size = ", parallel.ep_size, ": expected >= 1");
  FUSEDMOE_CHECK(parallel.ep_rank >= 0 && parallel.ep_rank < parallel.ep_size,
                 "[config] parallel.ep_rank = ", parallel.ep_rank,
                 ": expected 0 <= ep_rank < ep_size = ", parallel.ep_size);
  FUSEDMOE_CHECK(parallel.ep_size <= num_experts, "[config] parallel.ep_size = ", parallel.ep_size,
                 ": expected <= num_experts = ", num_experts, " (every rank holds at least one expert)");
  FUSEDMOE_CHECK(parallel.ep_size == 1 || is_expert_parallel(parallel.dispatch),
                 "[config] parallel.ep_size = ", parallel.ep_size,
                 " needs an expert-parallel dispatch (allgather, all2all or all2all_batched), got ",
                 to_string(parallel.dispatch));
  constexpr std::int64_t kInt32Max = std::numeric_limits<std::int32_t>::max();
  FUSEDMOE_CHECK(parallel.batched_capacity >= 1 && parallel.batched_capacity <= kInt32Max,
                 "[config] parallel.batched_capacity = ", parallel.batched_capacity,
                 ": expected 1 to 2^31 - 1 tokens per chunk");
  FUSEDMOE_CHECK(parallel.batched_rank_capacity >= 0 && parallel.batched_rank_capacity <= kInt32Max,
                 "[config] parallel.batched_rank_capacity = ", parallel.batched_rank_capacity,
                 ": expected 0 (enough that nothing is dropped) to 2^31 - 1");
  if (parallel.dispatch == DispatchMode::local_batched ||
      parallel.dispatch == DispatchMode::all2all_batched) {
    // The slabs [E_local, ep_size * batched_capacity, H] (fp32 at most) must have a 64-bit byte count.
    const std::int64_t slab_rows = static_cast<std::int64_t>(parallel.ep_size) * parallel.batched_capacity;
    const std::int64_t limit =
        std::numeric_limits<std::int64_t>::max() / 4 / hidden_size / num_local_experts();
    FUSEDMOE_CHECK(slab_rows <= limit, "[config] parallel.batched_capacity = ", parallel.batched_capacity,
                   ": the batched slabs of ", num_local_experts(), " experts x ", parallel.ep_size, " x ",
                   parallel.batched_capacity, " rows x ", hidden_size,
                   " would overflow a 64-bit byte count; lower batched_capacity");
  }
  FUSEDMOE_CHECK(device.index >= 0, "[config] device index ", device.index, ": expected >= 0");
  FUSEDMOE_CHECK(!device.is_cpu() || device.index == 0, "[config] device cpu:", device.index,
                 ": the CPU is device index 0");
}

std::string MoeConfig::fingerprint() const {
  return str_cat(describe(), " groups=", routing.num_groups, "/", routing.topk_group,
                 " renorm=", routing.renormalize, " scale=", routing.routed_scaling_factor,
                 " bias=", routing.use_correction_bias, " shared=", shared.count, "x",
                 shared.intermediate_size, shared.sigmoid_gate ? "+gate" : "", " ep=", parallel.ep_size, " ",
                 to_string(parallel.placement), " ", to_string(parallel.dispatch),
                 " capacity=", parallel.batched_capacity, " rank_capacity=", parallel.batched_rank_capacity);
}

std::int64_t MoeConfig::num_local_experts() const {
  const std::int64_t base = num_experts / parallel.ep_size;
  const std::int64_t extra = num_experts % parallel.ep_size;
  return base + (parallel.ep_rank < extra ? 1 : 0);
}

std::string MoeConfig::describe() const {
  return str_cat("E=", num_experts, " k=", routing.top_k, " H=", hidden_size, " I=", intermediate_size, " ",
                 to_string(activation), " w=", to_string(weight_dtype), " a=", to_string(act_dtype), " ",
                 to_string(routing.recipe), " ", to_string(device));
}

}  // namespace fusedmoe
