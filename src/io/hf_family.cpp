#include "io/hf_family.hpp"

#include <algorithm>
#include <limits>

#include "core/check.hpp"
#include "fusedmoe/dtype.hpp"

namespace fusedmoe::io {

namespace {

using Json = nlohmann::json;

// Typed config.json field access with messages naming the file and the field.
class Fields {
 public:
  Fields(const Json& config, const std::string& source) : config_(config), source_(source) {}

  bool has(const char* name) const { return config_.contains(name) && !config_[name].is_null(); }

  std::int64_t integer(const char* name) const {
    FUSEDMOE_CHECK(has(name), "[hf] ", source_, ": config field '", name, "' is missing");
    FUSEDMOE_CHECK(config_[name].is_number_integer(), "[hf] ", source_, ": config field '", name,
                   "' must be an integer, got ", config_[name].dump());
    return config_[name].get<std::int64_t>();
  }
  std::int64_t integer_or(const char* name, std::int64_t fallback) const {
    return has(name) ? integer(name) : fallback;
  }
  // An integer the configuration holds as an int (top_k, group counts, layer numbers): refused outside
  // int's range rather than truncated (4294967298 would otherwise read as 2).
  int small_integer(const char* name) const { return to_int(name, integer(name)); }
  int small_integer_or(const char* name, int fallback) const {
    return has(name) ? small_integer(name) : fallback;
  }
  double number_or(const char* name, double fallback) const {
    if (!has(name)) return fallback;
    FUSEDMOE_CHECK(config_[name].is_number(), "[hf] ", source_, ": config field '", name,
                   "' must be a number, got ", config_[name].dump());
    return config_[name].get<double>();
  }
  bool boolean_or(const char* name, bool fallback) const {
    if (!has(name)) return fallback;
    FUSEDMOE_CHECK(config_[name].is_boolean(), "[hf] ", source_, ": config field '", name,
                   "' must be true or false, got ", config_[name].dump());
    return config_[name].get<bool>();
  }
  std::string string_or(const char* name, const std::string& fallback) const {
    if (!has(name)) return fallback;
    FUSEDMOE_CHECK(config_[name].is_string(), "[hf] ", source_, ": config field '", name,
                   "' must be a string, got ", config_[name].dump());
    return config_[name].get<std::string>();
  }
  std::vector<int> integers_or_empty(const char* name) const {
    std::vector<int> values;
    if (!has(name)) return values;
    FUSEDMOE_CHECK(config_[name].is_array(), "[hf] ", source_, ": config field '", name, "' must be a list");
    for (const Json& item : config_[name]) {
      FUSEDMOE_CHECK(item.is_number_integer(), "[hf] ", source_, ": config field '", name,
                     "' must hold integers, got ", item.dump());
      values.push_back(to_int(name, item.get<std::int64_t>()));
    }
    return values;
  }
  // The first of several synonymous fields that is present.
  std::int64_t first_integer(std::initializer_list<const char*> names) const {
    for (const char* name : names) {
      if (has(name)) return integer(name);
    }
    std::string list;
    for (const char* name : names) append_joined(list, " or ", name);
    throw InvalidArgument(str_cat("[hf] ", source_, ": config field ", list, " is missing"));
  }

 private:
  int to_int(const char* name, std::int64_t value) const {
    FUSEDMOE_CHECK(value >= std::numeric_limits<int>::min() && value <= std::numeric_limits<int>::max(),
                   "[hf] ", source_, ": config field '", name, "' = ", value, " is out of range");
    return static_cast<int>(value);
  }

  const Json& config_;
  const std::string& source_;
};

Activation activation_of(const Fields& fields, const std::string& source) {
  const std::string act = fields.string_or("hidden_act", "silu");
  if (act == "silu" || act == "swish") return Activation::silu;
  if (act == "gelu") return Activation::gelu;
  throw InvalidArgument(
      str_cat("[hf] ", source, ": hidden_act '", act, "' is not supported: expected silu or gelu"));
}

}  // namespace

std::string_view family_name(HfFamily family) {
  switch (family) {
    case HfFamily::mixtral:
      return "mixtral";
    case HfFamily::qwen2_moe:
      return "qwen2_moe";
    case HfFamily::qwen3_moe:
      return "qwen3_moe";
    case HfFamily::olmoe:
      return "olmoe";
    case HfFamily::deepseek_v2:
      return "deepseek_v2";
    case HfFamily::deepseek_v3:
      return "deepseek_v3";
  }
  return "?";
}

HfModelSpec parse_hf_config(const Json& config, const std::string& source) {
  FUSEDMOE_CHECK(config.is_object(), "[hf] ", source,
                 ": expected a JSON object (a Hugging Face config.json)");
  const Fields fields(config, source);
  HfModelSpec spec;
  spec.model_type = fields.string_or("model_type", "");
  if (config.contains("architectures") && config["architectures"].is_array() &&
      !config["architectures"].empty() && config["architectures"][0].is_string()) {
    spec.architecture = config["architectures"][0].get<std::string>();
  } else {
    spec.architecture = spec.model_type;
  }
  const std::pair<const char*, HfFamily> known[] = {
      {"mixtral", HfFamily::mixtral},         {"qwen2_moe", HfFamily::qwen2_moe},
      {"qwen3_moe", HfFamily::qwen3_moe},     {"olmoe", HfFamily::olmoe},
      {"deepseek_v2", HfFamily::deepseek_v2}, {"deepseek_v3", HfFamily::deepseek_v3}};
  bool found = false;
  std::string supported;
  for (const auto& [type, family] : known) {
    append_joined(supported, ", ", type);
    if (spec.model_type == type) {
      spec.family = family;
      found = true;
    }
  }
  FUSEDMOE_CHECK(found, "[hf] ", source, ": model_type '", spec.model_type, "' (", spec.architecture,
                 ") is not a supported MoE family: expected one of ", supported);
  spec.torch_dtype = fields.string_or("torch_dtype", fields.string_or("dtype", ""));
  if (!spec.torch_dtype.empty()) {  // the expert tensors' dtype must match it (hf_weights.cpp)
    const char* field = fields.has("torch_dtype") ? "torch_dtype" : "dtype";
    try {
      FUSEDMOE_CHECK(is_floating(parse_dtype(spec.torch_dtype)), "not floating");
    } catch (const InvalidArgument&) {
      throw InvalidArgument(str_cat("[hf] ", source, ": config field '", field, "' = '", spec.torch_dtype,
                                    "': expected bfloat16, float16 or float32 (the dtypes the expert weights "
                                    "can be stored in)"));
    }
  }
  spec.num_layers = fields.small_integer_or("num_hidden_layers", 1);

  MoeConfig& moe = spec.moe;
  moe.hidden_size = fields.integer("hidden_size");
  moe.activation = activation_of(fields, source);
  moe.routing.top_k = fields.small_integer("num_experts_per_tok");
  switch (spec.family) {
    case HfFamily::mixtral:
      moe.num_experts = fields.first_integer({"num_local_experts", "num_experts"});
      moe.intermediate_size = fields.integer("intermediate_size");
      moe.routing.recipe = RoutingRecipe::softmax_topk_renorm;
      spec.block_prefix = "block_sparse_moe.";
      spec.gate_name = "w1";
      spec.up_name = "w3";
      spec.down_name = "w2";
      break;
    case HfFamily::qwen2_moe:
    case HfFamily::qwen3_moe:
    case HfFamily::olmoe: {
      moe.num_experts = fields.first_integer({"num_experts", "num_local_experts"});
      moe.intermediate_size = spec.family == HfFamily::olmoe ? fields.integer("intermediate_size")
                                                             : fields.integer("moe_intermediate_size");
      // Defaults where config.json omits a field are transformers' (every family here: no renormalisation).
      moe.routing.recipe = fields.boolean_or("norm_topk_prob", false) ? RoutingRecipe::softmax_topk_renorm
                                                                      : RoutingRecipe::softmax_topk;
      spec.block_prefix = "mlp.";
      spec.gate_name = "gate_proj";
      spec.up_name = "up_proj";
      spec.down_name = "down_proj";
      spec.decoder_sparse_step = fields.small_integer_or("decoder_sparse_step", 1);
      FUSEDMOE_CHECK(spec.decoder_sparse_step >= 1, "[hf] ", source,
                     ": decoder_sparse_step = ", spec.decoder_sparse_step, ": expected >= 1");
      spec.mlp_only_layers = fields.integers_or_empty("mlp_only_layers");
      if (spec.family == HfFamily::qwen2_moe && fields.integer_or("shared_expert_intermediate_size", 0) > 0) {
        moe.shared = {.count = 1,
                      .intermediate_size = fields.integer("shared_expert_intermediate_size"),
                      .sigmoid_gate = true};
        spec.shared_prefix = "shared_expert.";
        spec.shared_gate = true;
      }
      break;
    }
    case HfFamily::deepseek_v2:
    case HfFamily::deepseek_v3: {
      moe.num_experts = fields.integer("n_routed_experts");
      moe.intermediate_size = fields.integer("moe_intermediate_size");
      spec.block_prefix = "mlp.";
      spec.gate_name = "gate_proj";
      spec.up_name = "up_proj";
      spec.down_name = "down_proj";
      // Defaults where config.json omits a field are transformers' (DeepseekV2Config, DeepseekV3Config).
      const bool v3 = spec.family == HfFamily::deepseek_v3;
      spec.first_k_dense_replace = fields.small_integer_or("first_k_dense_replace", v3 ? 3 : 0);
      spec.moe_layer_freq = fields.small_integer_or("moe_layer_freq", 1);
      FUSEDMOE_CHECK(spec.moe_layer_freq >= 1, "[hf] ", source, ": moe_layer_freq = ", spec.moe_layer_freq,
                     ": expected >= 1");
      // DeepSeek-V2 with norm_topk_prob and a routed_scaling_factor renormalises, then scales, as vLLM does
      // (transformers' DeepseekV2 only scales; no released V2 config sets both).
      const bool renormalize = fields.boolean_or("norm_topk_prob", v3);
      const auto scaling = static_cast<float>(fields.number_or("routed_scaling_factor", v3 ? 2.5 : 1.0));
      const int groups = fields.small_integer_or("n_group", v3 ? 8 : 1);
      const int keep = fields.small_integer_or("topk_group", v3 ? 4 : groups);
      if (spec.family == HfFamily::deepseek_v3) {
        const std::string scoring = fields.string_or("scoring_func", "sigmoid");
        FUSEDMOE_CHECK(scoring == "sigmoid", "[hf] ", source, ": scoring_func '", scoring,
                       "' is not supported for deepseek_v3: expected sigmoid");
        moe.routing = {.recipe = RoutingRecipe::sigmoid_grouped_bias,
                       .top_k = moe.routing.top_k,
                       .num_groups = groups,
                       .topk_group = keep,
                       .renormalize = renormalize,
                       .routed_scaling_factor = scaling,
                       .use_correction_bias = true};
      } else {
        const std::string method = fields.string_or("topk_method", "greedy");
        FUSEDMOE_CHECK(method == "greedy" || method == "group_limited_greedy", "[hf] ", source,
                       ": topk_method '", method,
                       "' is not supported: expected greedy or group_limited_greedy");
        if (method == "greedy") {
          moe.routing = {
              .recipe = renormalize ? RoutingRecipe::softmax_topk_renorm : RoutingRecipe::softmax_topk,
              .top_k = moe.routing.top_k,
              .routed_scaling_factor = scaling};
        } else {
          moe.routing = {.recipe = RoutingRecipe::softmax_grouped,
                         .top_k = moe.routing.top_k,
                         .num_groups = groups,
                         .topk_group = keep,
                         .renormalize = renormalize,
                         .routed_scaling_factor = scaling};
        }
      }
      const std::int64_t shared = fields.integer_or("n_shared_experts", v3 ? 1 : 0);
      FUSEDMOE_CHECK(
          shared >= 0 && (moe.intermediate_size <= 0 ||  // validate() names that one
                          shared <= std::numeric_limits<std::int64_t>::max() / moe.intermediate_size),
          "[hf] ", source, ": n_shared_experts = ", shared,
          " with moe_intermediate_size = ", moe.intermediate_size,
          ": expected >= 0 and a product that fits in 64 bits");
      if (shared > 0) {
        // Hugging Face fuses the shared experts into one MLP of n_shared_experts * moe_intermediate_size.
        moe.shared = {.count = 1, .intermediate_size = shared * moe.intermediate_size};
        spec.shared_prefix = "shared_experts.";
      }
      break;
    }
  }
  return spec;
}

std::string dense_reason(const HfModelSpec& spec, int index) {
  if (std::find(spec.mlp_only_layers.begin(), spec.mlp_only_layers.end(), index) !=
      spec.mlp_only_layers.end()) {
    return str_cat("layer ", index, " is listed in mlp_only_layers");
  }
  if (spec.decoder_sparse_step > 1 && (index + 1) % spec.decoder_sparse_step != 0) {
    return str_cat("decoder_sparse_step = ", spec.decoder_sparse_step, " makes layer ", index, " dense");
  }
  if (index < spec.first_k_dense_replace) {
    return str_cat("first_k_dense_replace = ", spec.first_k_dense_replace, " makes layer ", index, " dense");
  }
  if (spec.moe_layer_freq > 1 && index % spec.moe_layer_freq != 0) {
    return str_cat("moe_layer_freq = ", spec.moe_layer_freq, " makes layer ", index, " dense");
  }
  return {};
}

}  // namespace fusedmoe::io
