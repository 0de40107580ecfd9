// Hugging Face MoE checkpoints and blocks: config.json decides the family (never guessed from
// tensor names), the routing recipe and the sizes; per-expert tensors are stacked into the canonical
// w13 / w2. Supported: Mixtral, Qwen2-MoE, Qwen3-MoE, OLMoE, DeepSeek-V2, DeepSeek-V3.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "fusedmoe/config.hpp"
#include "fusedmoe/weights.hpp"

namespace fusedmoe {

struct HfLayerInfo {
  int index = 0;
  bool is_moe = false;
  std::string dense_reason;  // why not, naming the config field (e.g. "first_k_dense_replace = 3")
};

// A checkpoint directory: config.json + model.safetensors or a sharded index. Opening reads only
// config.json and the safetensors headers of the shards a requested layer lives in.
class HfCheckpoint {
 public:
  static HfCheckpoint open(const std::filesystem::path& directory);
  ~HfCheckpoint();
  HfCheckpoint(HfCheckpoint&&) noexcept;
  HfCheckpoint& operator=(HfCheckpoint&&) noexcept;

  const std::string& architecture() const;  // config.json "architectures"[0], else model_type
  const std::string& model_type() const;
  int num_layers() const;
  std::vector<HfLayerInfo> layers() const;
  // The MoE config of one layer with activations (and weights) in `dtype`. Throws InvalidArgument
  // naming the field when the layer is dense or out of range.
  MoeConfig moe_config(int layer, DType dtype) const;
  // The layer's MoE weights, converted to `dtype` (router gate and correction bias in fp32). Reads only
  // this layer's tensors. Throws IoError naming the tensor when one is missing, extra, or mis-shaped.
  MoeWeights load_moe_weights(int layer, DType dtype) const;

 private:
  struct Impl;
  explicit HfCheckpoint(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct HfBlock {
  MoeConfig config;
  MoeWeights weights;
};

// One MoE block saved with its Hugging Face state_dict names (relative to the block: "gate.weight",
// "experts.gate_up_proj" or "experts.N.gate_proj.weight", ...), with the model's config.json (or a
// JSON object holding it under "config", as in shared/golden/<case>.json).
HfBlock load_hf_block(const std::filesystem::path& block_file, const std::filesystem::path& config_file,
                      DType dtype);

}  // namespace fusedmoe
