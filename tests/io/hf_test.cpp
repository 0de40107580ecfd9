// Hugging Face families from config.json: stacking per-expert tensors, dense layers, and every
// disagreement between the tensors and config.json reported with the tensor's name.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/random.hpp"
#include "fusedmoe/fusedmoe.hpp"
#include "fusedmoe/hf.hpp"
#include "fusedmoe/safetensors.hpp"
#include "testing/moe_case.hpp"

namespace fusedmoe {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("fusedmoe_hf_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

Tensor random_tensor(DType dtype, std::initializer_list<std::int64_t> shape, std::uint64_t seed) {
  Tensor tensor = Tensor::empty(dtype, shape);
  fill_normal(tensor, seed, 0.1f);
  return tensor;
}

// A small Mixtral-style checkpoint: 2 layers, E experts, per-expert w1/w3/w2 names.
struct MixtralFixture {
  static constexpr std::int64_t kExperts = 4, kHidden = 16, kIntermediate = 8;
  nlohmann::json config = {{"architectures", {"MixtralForCausalLM"}},
                           {"model_type", "mixtral"},
                           {"hidden_size", kHidden},
                           {"intermediate_size", kIntermediate},
                           {"num_local_experts", kExperts},
                           {"num_experts_per_tok", 2},
                           {"num_hidden_layers", 2},
                           {"hidden_act", "silu"},
                           {"torch_dtype", "bfloat16"}};
  std::map<std::string, Tensor> tensors;

  MixtralFixture() {
    std::uint64_t seed = 1;
    for (int layer = 0; layer < 2; ++layer) {
      const std::string prefix = "model.layers." + std::to_string(layer) + ".block_sparse_moe.";
      tensors[prefix + "gate.weight"] = random_tensor(DType::bf16, {kExperts, kHidden}, seed++);
      for (int e = 0; e < kExperts; ++e) {
        const std::string base = prefix + "experts." + std::to_string(e) + ".";
        tensors[base + "w1.weight"] = random_tensor(DType::bf16, {kIntermediate, kHidden}, seed++);
        tensors[base + "w3.weight"] = random_tensor(DType::bf16, {kIntermediate, kHidden}, seed++);
        tensors[base + "w2.weight"] = random_tensor(DType::bf16, {kHidden, kIntermediate}, seed++);
      }
      tensors["model.layers." + std::to_string(layer) + ".input_layernorm.weight"] =
          random_tensor(DType::bf16, {kHidden}, seed++);
    }
  }

  void write(const fs::path& directory) const {
    std::ofstream(directory / "config.json") << config.dump(2);
    SafetensorsWriter writer;
    for (const auto& [name, tensor] : tensors) writer.add(name, tensor);
    writer.write(directory / "model.safetensors");
  }
};

template <class Call>
void expect_error_mentioning(Call&& call, const std::string& fragment) {
  try {
    call();
    ADD_FAILURE() << "no exception; expected one mentioning '" << fragment << "'";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos) << error.what();
  }
}

TEST(HfCheckpoint, StacksPerExpertTensorsIntoCanonicalW13AndW2) {
  TempDir dir;
  MixtralFixture fixture;
  fixture.write(dir.path());
  const HfCheckpoint checkpoint = HfCheckpoint::open(dir.path());
  EXPECT_EQ(checkpoint.architecture(), "MixtralForCausalLM");
  const MoeConfig config = checkpoint.moe_config(1, DType::bf16);
  EXPECT_EQ(config.routing.recipe, RoutingRecipe::softmax_topk_renorm);
  EXPECT_EQ(config.num_experts, 4);
  const MoeWeights weights = checkpoint.load_moe_weights(1, DType::bf16);
  const std::int64_t I = MixtralFixture::kIntermediate, H = MixtralFixture::kHidden;
  for (int e = 0; e < 4; ++e) {
    const std::string base = "model.layers.1.block_sparse_moe.experts." + std::to_string(e) + ".";
    const auto* w13 = weights.w13.data_as<std::uint16_t>() + e * 2 * I * H;
    EXPECT_EQ(0, std::memcmp(w13, fixture.tensors.at(base + "w1.weight").data(), I * H * 2))
        << "gate rows first";
    EXPECT_EQ(0, std::memcmp(w13 + I * H, fixture.tensors.at(base + "w3.weight").data(), I * H * 2))
        << "then up";
    EXPECT_EQ(0, std::memcmp(weights.w2.data_as<std::uint16_t>() + e * H * I,
                             fixture.tensors.at(base + "w2.weight").data(), H * I * 2));
  }
  // Converted on load when another dtype is asked for.
  EXPECT_EQ(checkpoint.load_moe_weights(0, DType::fp32).w13.dtype(), DType::fp32);
  // And it runs, giving the fp64 reference of the routing it reports.
  FusedMoeLayer layer(config);
  layer.set_weights(weights);
  layer.finalize_weights();
  testing::expect_layer_matches_reference(layer, weights, random_tensor(DType::bf16, {3, H}, 9));
}

TEST(HfCheckpoint, MissingExtraOrMisshapedTensorsAreNamed) {
  {
    TempDir dir;
    MixtralFixture fixture;
    fixture.tensors.erase("model.layers.0.block_sparse_moe.experts.3.w3.weight");
    fixture.write(dir.path());
    expect_error_mentioning([&] { HfCheckpoint::open(dir.path()).load_moe_weights(0, DType::bf16); },
                            "tensor 'model.layers.0.block_sparse_moe.experts.3.w3.weight' is missing");
  }
  {
    TempDir dir;
    MixtralFixture fixture;
    fixture.tensors["model.layers.0.block_sparse_moe.experts.4.w1.weight"] =
        random_tensor(DType::bf16, {8, 16}, 3);
    fixture.write(dir.path());
    expect_error_mentioning([&] { HfCheckpoint::open(dir.path()).load_moe_weights(0, DType::bf16); },
                            "unexpected tensor 'model.layers.0.block_sparse_moe.experts.4.w1.weight'");
    expect_error_mentioning([&] { HfCheckpoint::open(dir.path()).load_moe_weights(0, DType::bf16); },
                            "is the expert count in config.json (4) right?");
  }
  {
    TempDir dir;
    MixtralFixture fixture;
    fixture.tensors["model.layers.0.block_sparse_moe.experts.1.w2.weight"] =
        random_tensor(DType::bf16, {16, 7}, 3);
    fixture.write(dir.path());
    expect_error_mentioning(
        [&] { HfCheckpoint::open(dir.path()).load_moe_weights(0, DType::bf16); },
        "'model.layers.0.block_sparse_moe.experts.1.w2.weight' shape [16, 7]: expected [16, 8]");
  }
  {
    TempDir dir;
    MixtralFixture fixture;
    fixture.tensors["model.layers.0.block_sparse_moe.experts.2.w1.weight"] =
        random_tensor(DType::fp32, {8, 16}, 3);
    fixture.write(dir.path());
    expect_error_mentioning([&] { HfCheckpoint::open(dir.path()).load_moe_weights(0, DType::bf16); },
                            "config.json declares bfloat16");
  }
}

TEST(HfCheckpoint, ConfigDecidesTheFamilyAndDenseLayersAreReported) {
  {
    TempDir dir;
    MixtralFixture fixture;
    fixture.config["model_type"] = "llama";
    fixture.write(dir.path());
    expect_error_mentioning([&] { HfCheckpoint::open(dir.path()); }, "is not a supported MoE family");
  }
  {
    TempDir dir;
    MixtralFixture fixture;
    fixture.config.erase("num_experts_per_tok");
    fixture.write(dir.path());
    expect_error_mentioning([&] { HfCheckpoint::open(dir.path()); }, "'num_experts_per_tok' is missing");
  }
  TempDir dir;
  const nlohmann::json config = {{"architectures", {"DeepseekV3ForCausalLM"}},
                                 {"model_type", "deepseek_v3"},
                                 {"hidden_size", 16},
                                 {"moe_intermediate_size", 8},
                                 {"n_routed_experts", 8},
                                 {"num_experts_per_tok", 2},
                                 {"n_group", 4},
                                 {"topk_group", 2},
                                 {"n_shared_experts", 1},
                                 {"routed_scaling_factor", 2.5},
                                 {"norm_topk_prob", true},
                                 {"first_k_dense_replace", 1},
                                 {"num_hidden_layers", 3}};
  std::ofstream(dir.path() / "config.json") << config.dump();
  SafetensorsWriter writer;
  writer.add("model.layers.0.mlp.gate_proj.weight", random_tensor(DType::bf16, {32, 16}, 1));
  writer.write(dir.path() / "model.safetensors");
  const HfCheckpoint checkpoint = HfCheckpoint::open(dir.path());
  const std::vector<HfLayerInfo> layers = checkpoint.layers();
  ASSERT_EQ(layers.size(), 3u);
  EXPECT_FALSE(layers[0].is_moe);
  EXPECT_NE(layers[0].dense_reason.find("first_k_dense_replace = 1"), std::string::npos);
  EXPECT_TRUE(layers[1].is_moe);
  expect_error_mentioning([&] { checkpoint.moe_config(0, DType::bf16); },
                          "dense MLP, not MoE: first_k_dense_replace");
  expect_error_mentioning([&] { checkpoint.moe_config(3, DType::bf16); }, "num_hidden_layers = 3");
  const MoeConfig moe = checkpoint.moe_config(1, DType::bf16);
  EXPECT_EQ(moe.routing.recipe, RoutingRecipe::sigmoid_grouped_bias);
  EXPECT_EQ(moe.routing.num_groups, 4);
  EXPECT_FLOAT_EQ(moe.routing.routed_scaling_factor, 2.5f);
  EXPECT_EQ(moe.shared.count, 1);
  expect_error_mentioning([&] { checkpoint.load_moe_weights(1, DType::bf16); },
                          "model.layers.1.mlp.gate.weight' is missing");
}

// config.json alone, beside one unrelated tensor: what HfCheckpoint::open reads of it.
HfCheckpoint open_config(const TempDir& dir, const nlohmann::json& config) {
  std::ofstream(dir.path() / "config.json") << config.dump();
  SafetensorsWriter writer;
  writer.add("model.embed_tokens.weight", random_tensor(DType::bf16, {4, 16}, 1));
  writer.write(dir.path() / "model.safetensors");
  return HfCheckpoint::open(dir.path());
}

// Fields config.json leaves out take transformers' defaults (Qwen3MoeConfig, DeepseekV3Config), so that a
// minimal config means what it means there.
TEST(HfCheckpoint, MissingFieldsTakeTransformersDefaults) {
  {
    TempDir dir;
    const HfCheckpoint qwen = open_config(dir, {{"model_type", "qwen3_moe"},
                                                {"hidden_size", 16},
                                                {"moe_intermediate_size", 8},
                                                {"num_experts", 8},
                                                {"num_experts_per_tok", 2}});
    EXPECT_EQ(qwen.moe_config(0, DType::fp32).routing.recipe, RoutingRecipe::softmax_topk);
  }
  TempDir dir;
  const HfCheckpoint deepseek = open_config(dir, {{"model_type", "deepseek_v3"},
                                                  {"hidden_size", 16},
                                                  {"moe_intermediate_size", 8},
                                                  {"n_routed_experts", 16},
                                                  {"num_experts_per_tok", 2},
                                                  {"num_hidden_layers", 5}});
  const std::vector<HfLayerInfo> layers = deepseek.layers();
  EXPECT_FALSE(layers[2].is_moe);  // first_k_dense_replace = 3
  EXPECT_TRUE(layers[3].is_moe);
  const MoeConfig moe = deepseek.moe_config(3, DType::fp32);
  EXPECT_EQ(moe.routing.num_groups, 8);
  EXPECT_EQ(moe.routing.topk_group, 4);
  EXPECT_FLOAT_EQ(moe.routing.routed_scaling_factor, 2.5f);
  EXPECT_TRUE(moe.routing.renormalize);
  EXPECT_EQ(moe.shared.count, 1);
  EXPECT_EQ(moe.shared.intermediate_size, 8);
}

TEST(HfCheckpoint, BadConfigFieldsAreNamed) {
  const nlohmann::json base = {{"model_type", "qwen3_moe"},
                               {"hidden_size", 16},
                               {"moe_intermediate_size", 8},
                               {"num_experts", 8},
                               {"num_experts_per_tok", 2}};
  const auto expect_refused = [&](const char* field, const nlohmann::json& value,
                                  const std::string& fragment) {
    TempDir dir;
    nlohmann::json config = base;
    config[field] = value;
    expect_error_mentioning([&] { (void)open_config(dir, config).moe_config(0, DType::fp32); }, fragment);
  };
  // 2^32 + 2 would read as top_k = 2 if truncated to int.
  expect_refused("num_experts_per_tok", std::int64_t{4294967298},
                 "config field 'num_experts_per_tok' = 4294967298 is out of range");
  expect_refused("decoder_sparse_step", 0, "decoder_sparse_step = 0: expected >= 1");
  expect_refused("mlp_only_layers", nlohmann::json::array({std::int64_t{1} << 40}), "is out of range");
  expect_refused("torch_dtype", "float64",
                 "config field 'torch_dtype' = 'float64': expected bfloat16, float16 or float32");
  expect_refused("moe_intermediate_size", std::int64_t{1} << 62, "would have more bytes than 64 bits count");
}

TEST(HfCheckpoint, QwenSparseStepAndMlpOnlyLayers) {
  TempDir dir;
  const nlohmann::json config = {{"architectures", {"Qwen2MoeForCausalLM"}},
                                 {"model_type", "qwen2_moe"},
                                 {"hidden_size", 16},
                                 {"moe_intermediate_size", 8},
                                 {"shared_expert_intermediate_size", 12},
                                 {"num_experts", 4},
                                 {"num_experts_per_tok", 2},
                                 {"decoder_sparse_step", 2},
                                 {"mlp_only_layers", {3}},
                                 {"num_hidden_layers", 4}};
  std::ofstream(dir.path() / "config.json") << config.dump();
  SafetensorsWriter writer;
  writer.add("model.embed_tokens.weight", random_tensor(DType::bf16, {4, 16}, 1));
  writer.write(dir.path() / "model.safetensors");
  const std::vector<HfLayerInfo> layers = HfCheckpoint::open(dir.path()).layers();
  EXPECT_FALSE(layers[0].is_moe);
  EXPECT_NE(layers[0].dense_reason.find("decoder_sparse_step = 2"), std::string::npos);
  EXPECT_TRUE(layers[1].is_moe);
  EXPECT_FALSE(layers[2].is_moe);
  EXPECT_FALSE(layers[3].is_moe);
  EXPECT_NE(layers[3].dense_reason.find("mlp_only_layers"), std::string::npos);
  const MoeConfig moe = HfCheckpoint::open(dir.path()).moe_config(1, DType::fp32);
  EXPECT_EQ(moe.shared.intermediate_size, 12);
  EXPECT_TRUE(moe.shared.sigmoid_gate);
  EXPECT_EQ(moe.routing.recipe, RoutingRecipe::softmax_topk);
}

}  // namespace
}  // namespace fusedmoe
