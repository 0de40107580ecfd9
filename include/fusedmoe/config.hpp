// MoeConfig: everything that describes one MoE layer, validated before anything runs.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "fusedmoe/device.hpp"
#include "fusedmoe/dtype.hpp"

namespace fusedmoe {

// Gated activations: act(gate) * up, with gate = rows [0, I) and up = rows [I, 2I) of w13.
enum class Activation { silu, gelu };

// Named routing recipes (how router logits become top-k ids and weights).
enum class RoutingRecipe {
  softmax_topk,          // softmax over all experts, then top-k (OLMoE, Qwen2-MoE without norm_topk_prob)
  softmax_topk_renorm,   // softmax, top-k, weights divided by their sum (Mixtral, Qwen3-MoE)
  topk_softmax,          // top-k on the logits, then softmax over the k chosen logits
  softmax_grouped,       // softmax, group score = max in group, keep topk_group groups, top-k (DeepSeek-V2)
  sigmoid_grouped_bias,  // sigmoid; selection on score + correction bias; group score = sum of top-2;
                         // weights are the unbiased scores (DeepSeek-V3)
  llama4_top1_sigmoid,   // top-1 on the logits, weight = sigmoid(logit), applied to the input (Llama-4)
};

struct RoutingConfig {
  RoutingRecipe recipe = RoutingRecipe::softmax_topk_renorm;
  int top_k = 2;
  int num_groups = 1;        // grouped recipes: experts are split into num_groups equal groups
  int topk_group = 1;        // grouped recipes: how many groups stay eligible
  bool renormalize = false;  // grouped recipes: divide the chosen weights by their sum (norm_topk_prob)
  float routed_scaling_factor = 1.0f;  // multiplies the final weights (after renormalising)
  bool use_correction_bias = false;    // sigmoid_grouped_bias: the layer carries a bias [E]
};

// Shared experts: `count` dense gated MLPs every token goes through, added to the routed output,
// optionally scaled per token by sigmoid(x . shared_gate) (Qwen2-MoE).
struct SharedExpertsConfig {
  int count = 0;
  std::int64_t intermediate_size = 0;
  bool sigmoid_gate = false;
};

enum class ExpertPlacement { linear, round_robin };
// How tokens reach their experts: on one device (standard or batched activation format), or across
// expert-parallel ranks: allgather (every rank sees every token; combine by reduce-scatter), all2all
// (each token goes only to the ranks owning its experts; combine returns the partial sums home), or
// all2all_batched (the low-latency shape: rows land in fixed-capacity per-expert slabs, batched format;
// unweighted expert rows travel home and are weighted there).
enum class DispatchMode { local, local_batched, allgather, all2all, all2all_batched };

struct ParallelConfig {
  int ep_size = 1;
  int ep_rank = 0;
  ExpertPlacement placement = ExpertPlacement::linear;  // which rank holds which experts
  DispatchMode dispatch = DispatchMode::local;
  // Batched format: rows per expert slab. Larger M is processed in chunks of this many tokens.
  std::int64_t batched_capacity = 256;
  // all2all_batched: (token, slot) pairs one rank may send to another per call (the fixed message size).
  // 0 = batched_capacity * min(top_k, ceil(num_experts / ep_size)): nothing is ever dropped. When a rank's
  // pairs for one destination exceed it, the pairs past it in (token, slot) order are dropped (they
  // contribute nothing to the output) and counted.
  std::int64_t batched_rank_capacity = 0;
};

struct MoeConfig {
  std::int64_t num_experts = 0;  // global (logical) experts
  std::int64_t hidden_size = 0;
  std::int64_t intermediate_size = 0;  // per expert
  Activation activation = Activation::silu;
  DType weight_dtype = DType::bf16;
  DType act_dtype = DType::bf16;  // activations in and out, and the intermediate between the GEMMs
  RoutingConfig routing{};
  SharedExpertsConfig shared{};
  ParallelConfig parallel{};
  Device device{};

  // Throws InvalidArgument naming the first bad field, its value and what is allowed.
  void validate() const;
  // Experts held by this rank (num_experts when ep_size == 1).
  std::int64_t num_local_experts() const;
  std::string describe() const;
  // Every field, for checking that all ranks agree on the configuration.
  std::string fingerprint() const;
};

std::string_view to_string(Activation activation);
std::string_view to_string(RoutingRecipe recipe);
std::string_view to_string(DispatchMode mode);
std::string_view to_string(ExpertPlacement placement);
Activation parse_activation(std::string_view name);
RoutingRecipe parse_routing_recipe(std::string_view name);
DispatchMode parse_dispatch_mode(std::string_view name);
// True for recipes that multiply the input by the routing weight instead of the output.
bool applies_weight_on_input(RoutingRecipe recipe);
bool is_grouped(RoutingRecipe recipe);
// True for the modes that communicate between ranks.
bool is_expert_parallel(DispatchMode mode);
ExpertPlacement parse_placement(std::string_view name);

}  // namespace fusedmoe
