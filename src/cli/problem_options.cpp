#include "cli/problem_options.hpp"

#include "cli/presets.hpp"
#include "cli/validators.hpp"
#include "core/check.hpp"

namespace fusedmoe::cli {

void ProblemOptions::add_to(CLI::App& app) {
  std::string preset_names;
  for (const Preset& entry : presets()) append_joined(preset_names, ", ", entry.name);
  app.add_option("--preset", preset, "Model shape: " + preset_names)->capture_default_str();
  app.add_option("--tokens,-m", tokens, "Tokens (M) in the batch")->capture_default_str()->check(at_least(0));
  app.add_option("--hidden", hidden, "Hidden size H (overrides the preset)")->check(at_least(1));
  app.add_option("--intermediate", intermediate, "Expert intermediate size I (overrides the preset)")
      ->check(at_least(1));
  app.add_option("--experts", experts, "Number of experts E (overrides the preset)")->check(at_least(1));
  app.add_option("--topk", top_k, "Experts per token k (overrides the preset)")->check(at_least(1));
  app.add_option("--routing", routing,
                 "Routing recipe: softmax_topk, softmax_topk_renorm, topk_softmax, softmax_grouped, "
                 "sigmoid_grouped_bias, llama4_top1_sigmoid");
  app.add_option("--groups", num_groups, "Expert groups (grouped recipes)")->check(at_least(1));
  app.add_option("--topk-group", topk_group, "Groups kept per token (grouped recipes)")->check(at_least(1));
  app.add_option("--routed-scaling", routed_scaling, "Routed scaling factor");
  app.add_option("--dtype", dtype, "Activation dtype: bf16, fp16, fp32")->capture_default_str();
  app.add_option("--weight-dtype", weight_dtype, "Weight dtype (default: --dtype)");
  app.add_option("--activation", activation, "Gated activation: silu, gelu")->capture_default_str();
  CLI::Option* shared_option =
      app.add_option("--shared-experts", shared_experts, "Shared experts added to every token")
          ->capture_default_str()
          ->check(at_least(0));
  app.add_option("--shared-intermediate", shared_intermediate, "Shared expert intermediate size (default: I)")
      ->check(at_least(1))
      ->needs(shared_option);
  app.add_flag("--shared-gate", shared_gate, "Scale the shared experts by sigmoid(x . gate) (Qwen2-MoE)");
  app.add_option("--dispatch", dispatch, "Dispatch: local (standard format) or local_batched")
      ->capture_default_str();
  app.add_option("--device", device, "cpu, cuda:N, or cuda (with --ep: each rank the GPU of its local rank)")
      ->capture_default_str();
  app.add_option("--ep", ep, "Expert-parallel ranks: run under `mpirun -np N` with --ep N")
      ->capture_default_str()
      ->check(at_least(1));
  app.add_option("--ep-mode", ep_mode, "Expert-parallel dispatch: allgather, all2all or all2all_batched")
      ->check(CLI::IsMember({"allgather", "all2all", "all2all_batched"}))
      ->capture_default_str();
  app.add_option("--batched-capacity", batched_capacity,
                 "Batched format: rows per expert slab, the tokens of one chunk (0: 256)")
      ->check(at_least(0));
  app.add_option(
         "--ep-rank-capacity", batched_rank_capacity,
         "all2all_batched: (token, slot) pairs a rank sends another per chunk; pairs past it are dropped "
         "and counted (0: enough never to drop)")
      ->check(at_least(0));
  app.add_option("--placement", placement, "Expert placement over ranks: linear or round_robin")
      ->check(CLI::IsMember({"linear", "round_robin"}))
      ->capture_default_str();
  app.add_option("--seed", seed, "Seed of the random weights and inputs")->capture_default_str();
  app.add_option("--threads", threads, "CPU threads (0: FUSEDMOE_NUM_THREADS or all available cores)")
      ->capture_default_str()
      ->check(thread_count());
  app.add_flag("--json", json, "One JSON object per line instead of a table");
}

MoeConfig ProblemOptions::config() const {
  const Preset& base = find_preset(preset);
  MoeConfig config;
  config.hidden_size = hidden.value_or(base.hidden_size);
  config.intermediate_size = intermediate.value_or(base.intermediate_size);
  config.num_experts = experts.value_or(base.num_experts);
  config.routing = base.routing;
  if (routing) {
    const RoutingRecipe recipe = parse_routing_recipe(*routing);
    if (recipe != config.routing.recipe) {
      config.routing = RoutingConfig{.recipe = recipe, .top_k = config.routing.top_k};
      if (recipe == RoutingRecipe::sigmoid_grouped_bias) {
        config.routing.use_correction_bias = true;
        config.routing.renormalize = true;
      }
      if (recipe == RoutingRecipe::llama4_top1_sigmoid) config.routing.top_k = 1;
    }
  }
  if (top_k) config.routing.top_k = *top_k;
  if (num_groups) config.routing.num_groups = *num_groups;
  if (topk_group) config.routing.topk_group = *topk_group;
  if (routed_scaling) config.routing.routed_scaling_factor = *routed_scaling;
  if (config.routing.num_groups >= 1 && config.num_experts >= 1 &&
      (config.routing.num_groups > config.num_experts ||
       config.num_experts % config.routing.num_groups != 0)) {
    // A preset's grouping that no longer fits an overridden expert count falls back to one group.
    if (!num_groups) config.routing.num_groups = config.routing.topk_group = 1;
  }
  config.act_dtype = parse_dtype(dtype);
  config.weight_dtype = weight_dtype ? parse_dtype(*weight_dtype) : config.act_dtype;
  config.activation = parse_activation(activation);
  config.shared.count = shared_experts;
  config.shared.intermediate_size =
      shared_experts > 0 ? (shared_intermediate > 0 ? shared_intermediate : config.intermediate_size) : 0;
  config.shared.sigmoid_gate = shared_gate;
  config.parallel.dispatch = parse_dispatch_mode(dispatch);
  if (batched_capacity > 0) config.parallel.batched_capacity = batched_capacity;
  config.parallel.batched_rank_capacity = batched_rank_capacity;
  config.device = parse_device(device);
  config.validate();
  return config;
}

MoeConfig ProblemOptions::parallel_config(int rank) const {
  MoeConfig parallel = config();
  parallel.parallel.ep_size = ep;
  parallel.parallel.ep_rank = rank;
  parallel.parallel.placement = parse_placement(placement);
  parallel.parallel.dispatch = parse_dispatch_mode(ep_mode);
  FUSEDMOE_CHECK(is_expert_parallel(parallel.parallel.dispatch), "[cli] --ep-mode ", ep_mode,
                 ": expected allgather, all2all or all2all_batched");
  parallel.validate();
  return parallel;
}

}  // namespace fusedmoe::cli
