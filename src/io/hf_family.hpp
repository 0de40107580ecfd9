// What config.json says about an MoE model: its family, sizes, routing and which layers are MoE.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fusedmoe/config.hpp"

namespace fusedmoe::io {

enum class HfFamily { mixtral, qwen2_moe, qwen3_moe, olmoe, deepseek_v2, deepseek_v3 };

struct HfModelSpec {
  HfFamily family = HfFamily::mixtral;
  std::string architecture, model_type;
  int num_layers = 0;
  MoeConfig moe;            // sizes, routing and shared experts (dtypes filled per request)
  std::string torch_dtype;  // "bfloat16", "float32", ... when config.json declares one
  // Dense-layer rules.
  int first_k_dense_replace = 0;     // DeepSeek
  int moe_layer_freq = 1;            // DeepSeek
  int decoder_sparse_step = 1;       // Qwen
  std::vector<int> mlp_only_layers;  // Qwen
  // Tensor names relative to "model.layers.L.": the MoE block's prefix, and its members.
  std::string block_prefix;                   // "mlp." or "block_sparse_moe."
  std::string gate_name, up_name, down_name;  // per-expert names: "gate_proj" / "w1", ...
  std::string shared_prefix;                  // "shared_expert." / "shared_experts."
  bool shared_gate = false;                   // "shared_expert_gate.weight"
};

// Reads a config.json object. Throws InvalidArgument naming the field that is missing, of the wrong
// type, or unsupported (with the families that are supported).
HfModelSpec parse_hf_config(const nlohmann::json& config, const std::string& source);
// Empty when layer `index` is MoE; otherwise why not (naming the config field).
std::string dense_reason(const HfModelSpec& spec, int index);
std::string_view family_name(HfFamily family);

}  // namespace fusedmoe::io
