// The CPU router: every routing recipe, computed in fp32 per token.
#include "fusedmoe/router.hpp"

#include <cfloat>
#include <cmath>
#include <vector>

#include "core/check.hpp"
#include "core/tensor_checks.hpp"
#include "core/threading.hpp"
#include "router/topk.hpp"
#if FUSEDMOE_WITH_CUDA
#include "backends/cuda_common/device_ops.hpp"
#endif

namespace fusedmoe {

namespace {

constexpr std::string_view kComponent = "router";

// NaN -> -FLT_MAX, +/-inf -> +/-FLT_MAX: the documented rule that keeps every result finite.
float sanitize(float value) {
  if (std::isnan(value)) return -FLT_MAX;
  if (value > FLT_MAX) return FLT_MAX;
  if (value < -FLT_MAX) return -FLT_MAX;
  return value;
}

float load_logit(const TensorView& logits, std::int64_t index) {
  switch (logits.dtype()) {
    case DType::bf16:
      return bf16_to_float(logits.data_as<const std::uint16_t>()[index]);
    case DType::fp16:
      return fp16_to_float(logits.data_as<const std::uint16_t>()[index]);
    default:
      return logits.data_as<const float>()[index];
  }
}

void softmax_in_place(std::span<float> values) {
  float max_value = -FLT_MAX;
  for (float value : values) max_value = std::max(max_value, value);
  float sum = 0.0f;
  for (float& value : values) {
    value = std::exp(value - max_value);
    sum += value;
  }
  for (float& value : values) value /= sum;
}

float sigmoid(float value) {
  return 1.0f / (1.0f + std::exp(-value));
}

// Marks the experts of the topk_group best groups eligible. Group score: max of the group's
// selection scores, or the sum of its best two when `sum_of_top2`. Experts outside them are never chosen,
// as in DeepSeek's own inference code and vLLM (a -inf mask). transformers masks them to 0.0 instead, which
// differs only where an eligible expert's score (sigmoid + correction bias) is below 0.
void mark_eligible_groups(std::span<const float> selection_scores, int num_groups, int topk_group,
                          bool sum_of_top2, std::vector<float>& group_scores,
                          std::vector<std::int32_t>& chosen_groups, std::vector<std::uint8_t>& eligible) {
  const std::size_t group_size = selection_scores.size() / static_cast<std::size_t>(num_groups);
  for (int group = 0; group < num_groups; ++group) {
    float best = -FLT_MAX, second = -FLT_MAX;
    for (std::size_t offset = 0; offset < group_size; ++offset) {
      const float value = selection_scores[group * group_size + offset];
      if (value > best) {
        second = best;
        best = value;
      } else if (value > second) {
        second = value;
      }
    }
    group_scores[group] = sum_of_top2 && group_size >= 2 ? best + second : best;
  }
  select_topk(group_scores, {}, topk_group, chosen_groups);
  std::fill(eligible.begin(), eligible.end(), 0);
  for (int rank = 0; rank < topk_group; ++rank) {
    const std::size_t first = static_cast<std::size_t>(chosen_groups[rank]) * group_size;
    std::fill(eligible.begin() + first, eligible.begin() + first + group_size, 1);
  }
}

struct RowScratch {
  std::vector<float> logits, scores, selection, group_scores;
  std::vector<std::int32_t> chosen_groups;
  std::vector<std::uint8_t> eligible;
  RowScratch(std::int64_t num_experts, int num_groups)
      : logits(num_experts),
        scores(num_experts),
        selection(num_experts),
        group_scores(num_groups),
        chosen_groups(num_groups),
        eligible(num_experts) {}
};

void route_row(const RoutingConfig& routing, const float* bias, RowScratch& scratch,
               std::span<std::int32_t> ids, std::span<float> weights) {
  const int k = routing.top_k;
  std::vector<float>& logits = scratch.logits;
  std::vector<float>& scores = scratch.scores;
  bool renormalize = false;
  switch (routing.recipe) {
    case RoutingRecipe::softmax_topk:
    case RoutingRecipe::softmax_topk_renorm: {
      scores = logits;
      softmax_in_place(scores);
      select_topk(scores, {}, k, ids);
      for (int slot = 0; slot < k; ++slot) weights[slot] = scores[ids[slot]];
      renormalize = routing.recipe == RoutingRecipe::softmax_topk_renorm;
      break;
    }
    case RoutingRecipe::topk_softmax: {
      select_topk(logits, {}, k, ids);
      for (int slot = 0; slot < k; ++slot) weights[slot] = logits[ids[slot]];
      softmax_in_place(weights.first(k));
      break;
    }
    case RoutingRecipe::softmax_grouped: {
      scores = logits;
      softmax_in_place(scores);
      mark_eligible_groups(scores, routing.num_groups, routing.topk_group, false, scratch.group_scores,
                           scratch.chosen_groups, scratch.eligible);
      select_topk(scores, scratch.eligible, k, ids);
      for (int slot = 0; slot < k; ++slot) weights[slot] = scores[ids[slot]];
      renormalize = routing.renormalize;
      break;
    }
    case RoutingRecipe::sigmoid_grouped_bias: {
      std::vector<float>& selection = scratch.selection;
      for (std::size_t expert = 0; expert < logits.size(); ++expert) {
        scores[expert] = sigmoid(logits[expert]);
        selection[expert] = bias != nullptr ? scores[expert] + sanitize(bias[expert]) : scores[expert];
      }
      mark_eligible_groups(selection, routing.num_groups, routing.topk_group, bias != nullptr,
                           scratch.group_scores, scratch.chosen_groups, scratch.eligible);
      select_topk(selection, scratch.eligible, k, ids);
      for (int slot = 0; slot < k; ++slot) weights[slot] = scores[ids[slot]];
      renormalize = routing.renormalize;
      break;
    }
    case RoutingRecipe::llama4_top1_sigmoid: {
      select_topk(logits, {}, 1, ids);
      weights[0] = sigmoid(logits[ids[0]]);
      break;
    }
  }
  if (renormalize) {
    float sum = 0.0f;
    for (int slot = 0; slot < k; ++slot) sum += weights[slot];
    // The tiny term keeps an all-zero sigmoid row finite (as DeepSeek-V3's reference does).
    const float denominator = routing.recipe == RoutingRecipe::sigmoid_grouped_bias ? sum + 1e-20f : sum;
    for (int slot = 0; slot < k; ++slot) weights[slot] /= denominator;
  }
  if (routing.routed_scaling_factor != 1.0f) {
    for (int slot = 0; slot < k; ++slot) weights[slot] *= routing.routed_scaling_factor;
  }
}

}  // namespace

void validate_routing(const RoutingConfig& routing, std::int64_t num_experts) {
  const std::string_view recipe = to_string(routing.recipe);
  FUSEDMOE_CHECK(routing.top_k >= 1 && routing.top_k <= num_experts, "[config] top_k = ", routing.top_k,
                 ": expected 1 <= top_k <= num_experts = ", num_experts);
  FUSEDMOE_CHECK(std::isfinite(routing.routed_scaling_factor) && routing.routed_scaling_factor > 0.0f,
                 "[config] routed_scaling_factor = ", routing.routed_scaling_factor,
                 ": expected a finite value > 0");
  if (routing.recipe == RoutingRecipe::llama4_top1_sigmoid) {
    FUSEDMOE_CHECK(routing.top_k == 1, "[config] routing ", recipe, " needs top_k = 1, got ", routing.top_k);
  }
  if (is_grouped(routing.recipe)) {
    FUSEDMOE_CHECK(routing.num_groups >= 1 && num_experts % routing.num_groups == 0,
                   "[config] num_groups = ", routing.num_groups,
                   ": expected a divisor of num_experts = ", num_experts);
    FUSEDMOE_CHECK(routing.topk_group >= 1 && routing.topk_group <= routing.num_groups,
                   "[config] topk_group = ", routing.topk_group,
                   ": expected 1 <= topk_group <= num_groups = ", routing.num_groups);
    const std::int64_t eligible = routing.topk_group * (num_experts / routing.num_groups);
    FUSEDMOE_CHECK(routing.top_k <= eligible, "[config] top_k = ", routing.top_k,
                   ": expected <= topk_group * ", "experts per group = ", eligible);
  } else {
    FUSEDMOE_CHECK(
        routing.num_groups == 1 && routing.topk_group == 1, "[config] num_groups = ", routing.num_groups,
        ", topk_group = ", routing.topk_group, ": routing ", recipe,
        " is not grouped; expected 1 and 1 (grouped recipes: softmax_grouped, sigmoid_grouped_bias)");
    FUSEDMOE_CHECK(!routing.renormalize, "[config] renormalize is set but routing ", recipe,
                   " fixes it by name (use softmax_topk_renorm to renormalise a softmax top-k)");
  }
  FUSEDMOE_CHECK(!routing.use_correction_bias || routing.recipe == RoutingRecipe::sigmoid_grouped_bias,
                 "[config] use_correction_bias is set but routing ", recipe,
                 " takes no correction bias (only sigmoid_grouped_bias does)");
}

void route(const TensorView& logits, const RoutingConfig& routing, const TensorView& correction_bias,
           const TensorView& topk_ids, const TensorView& topk_weights, const ExecContext& context) {
  check_dtype(kComponent, "router_logits", logits, {DType::fp32, DType::bf16, DType::fp16});
  check_shape(kComponent, "router_logits", logits, {-1, -1});
  const Device device = logits.device();  // every tensor on the logits' device (CPU or CUDA)
  const std::int64_t num_tokens = logits.size(0);
  const std::int64_t num_experts = logits.size(1);
  FUSEDMOE_CHECK(num_experts >= 1, "[router] router_logits has 0 experts: expected [M, E] with E >= 1");
  validate_routing(routing, num_experts);
  const int k = routing.top_k;
  check_dtype(kComponent, "topk_ids", topk_ids, {DType::int32});
  check_shape(kComponent, "topk_ids", topk_ids, {num_tokens, k});
  check_device(kComponent, "topk_ids", topk_ids, device);
  check_dtype(kComponent, "topk_weights", topk_weights, {DType::fp32});
  check_shape(kComponent, "topk_weights", topk_weights, {num_tokens, k});
  check_device(kComponent, "topk_weights", topk_weights, device);
  const float* bias = nullptr;
  if (routing.use_correction_bias) {
    check_dtype(kComponent, "correction_bias", correction_bias, {DType::fp32});
    check_shape(kComponent, "correction_bias", correction_bias, {num_experts});
    check_device(kComponent, "correction_bias", correction_bias, device);
    bias = correction_bias.data_as<const float>();
  } else {
    FUSEDMOE_CHECK(!correction_bias.defined(),
                   "[router] a correction_bias was given but routing.use_correction_bias ", "is false");
  }
  if (device.is_cuda()) {
#if FUSEDMOE_WITH_CUDA
    // The same rules on the GPU, on context.stream.
    cuda::route(logits, routing, correction_bias, topk_ids, topk_weights, context);
    return;
#else
    throw Unsupported("[router] router_logits on " + to_string(device) + ": fusedmoe was built without CUDA");
#endif
  }

  auto* ids = topk_ids.data_as<std::int32_t>();
  auto* weights = topk_weights.data_as<float>();
  parallel_for(num_tokens, resolve_num_threads(context), [&](std::int64_t begin, std::int64_t end) {
    RowScratch scratch(num_experts, routing.num_groups);
    for (std::int64_t token = begin; token < end; ++token) {
      for (std::int64_t expert = 0; expert < num_experts; ++expert) {
        scratch.logits[expert] = sanitize(load_logit(logits, token * num_experts + expert));
      }
      route_row(routing, bias, scratch, {ids + token * k, static_cast<std::size_t>(k)},
                {weights + token * k, static_cast<std::size_t>(k)});
    }
  });
}

}  // namespace fusedmoe
