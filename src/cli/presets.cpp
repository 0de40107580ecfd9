#include "cli/presets.hpp"

#include <array>

#include "core/check.hpp"

namespace fusedmoe::cli {

namespace {
constexpr RoutingConfig softmax_renorm(int top_k) {
  return {.recipe = RoutingRecipe::softmax_topk_renorm, .top_k = top_k};
}

const std::array kPresets = {
    Preset{"small", "a small shape that runs in about a second on the reference backend", 256, 128, 16,
           softmax_renorm(4)},
    Preset{"qwen3-30b-a3b", "Qwen/Qwen3-30B-A3B (softmax, norm_topk_prob)", 2048, 768, 128,
           softmax_renorm(8)},
    Preset{"mixtral-8x7b", "mistralai/Mixtral-8x7B-v0.1 (softmax, renormalised)", 4096, 14336, 8,
           softmax_renorm(2)},
    Preset{"olmoe-1b-7b", "allenai/OLMoE-1B-7B-0924 (softmax, no renormalisation)", 2048, 1024, 64,
           RoutingConfig{.recipe = RoutingRecipe::softmax_topk, .top_k = 8}},
    Preset{"deepseek-v3",
           "deepseek-ai/DeepSeek-V3 routed experts (sigmoid + bias, 8 groups keep 4, scale 2.5)", 7168, 2048,
           256,
           RoutingConfig{.recipe = RoutingRecipe::sigmoid_grouped_bias,
                         .top_k = 8,
                         .num_groups = 8,
                         .topk_group = 4,
                         .renormalize = true,
                         .routed_scaling_factor = 2.5f,
                         .use_correction_bias = true}},
};
}  // namespace

std::span<const Preset> presets() {
  return kPresets;
}

const Preset& find_preset(std::string_view name) {
  std::string known;
  for (const Preset& preset : kPresets) {
    if (preset.name == name) return preset;
    append_joined(known, ", ", preset.name);
  }
  throw InvalidArgument(str_cat("[cli] unknown preset '", name, "': expected one of ", known));
}

}  // namespace fusedmoe::cli
