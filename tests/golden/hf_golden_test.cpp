// The layer against Hugging Face transformers' own MoE blocks (../shared/golden): a reference
// nobody on this project wrote. fp32: relative error < 1e-5; bf16: < 1e-2 against the fp32 truth.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "fusedmoe/safetensors.hpp"
#include "testing/moe_case.hpp"

namespace fusedmoe {
namespace {

namespace fs = std::filesystem;
const fs::path kGolden = FUSEDMOE_GOLDEN_DIR;

struct GoldenBlock {
  MoeConfig config;
  MoeWeights weights;
};

// The block's HF config and state_dict, mapped by hand here (three families, as in the golden README).
GoldenBlock load_block(const std::string& name, DType dtype) {
  std::ifstream stream(kGolden / (name + ".json"));
  const nlohmann::json meta = nlohmann::json::parse(stream);
  const nlohmann::json& hf = meta["config"];
  const SafetensorsFile file = SafetensorsFile::open(kGolden / (name + "_bf16.safetensors"));
  GoldenBlock block;
  MoeConfig& c = block.config;
  c.hidden_size = hf["hidden_size"];
  c.intermediate_size = hf["moe_intermediate_size"];
  c.act_dtype = c.weight_dtype = dtype;
  c.routing.top_k = hf["num_experts_per_tok"];
  const std::string family = hf["model_type"];
  if (family == "deepseek_v3") {
    c.num_experts = hf["n_routed_experts"];
    c.routing = {.recipe = RoutingRecipe::sigmoid_grouped_bias,
                 .top_k = hf["num_experts_per_tok"],
                 .num_groups = hf["n_group"],
                 .topk_group = hf["topk_group"],
                 .renormalize = hf["norm_topk_prob"],
                 .routed_scaling_factor = hf["routed_scaling_factor"],
                 .use_correction_bias = true};
    c.shared = {.count = 1, .intermediate_size = c.intermediate_size * hf["n_shared_experts"].get<int>()};
    block.weights.correction_bias = file.load_as("gate.e_score_correction_bias", DType::fp32);
  } else {
    c.num_experts = hf.contains("num_experts") ? hf["num_experts"] : hf["num_local_experts"];
    c.routing.recipe = hf["norm_topk_prob"] ? RoutingRecipe::softmax_topk_renorm : RoutingRecipe::softmax_topk;
    if (family == "qwen2_moe") {
      c.shared = {.count = 1, .intermediate_size = hf["shared_expert_intermediate_size"], .sigmoid_gate = true};
      block.weights.shared_gate = file.load_as("shared_expert_gate.weight", DType::fp32);
    }
  }
  c.validate();
  block.weights.router_gate = file.load_as("gate.weight", DType::fp32);
  block.weights.w13 = file.load_as("experts.gate_up_proj", dtype);
  block.weights.w2 = file.load_as("experts.down_proj", dtype);
  if (c.shared.count > 0) {
    const std::string prefix = family == "deepseek_v3" ? "shared_experts." : "shared_expert.";
    const Tensor gate = file.load_as(prefix + "gate_proj.weight", dtype);
    const Tensor up = file.load_as(prefix + "up_proj.weight", dtype);
    const std::int64_t rows = gate.size(0);
    block.weights.shared_w13 = Tensor::empty(dtype, {1, 2 * rows, c.hidden_size});
    copy_tensor(gate, block.weights.shared_w13.view().reshape({2 * rows, c.hidden_size}).slice_rows(0, rows));
    copy_tensor(up, block.weights.shared_w13.view().reshape({2 * rows, c.hidden_size}).slice_rows(rows, 2 * rows));
    const Tensor down = file.load_as(prefix + "down_proj.weight", dtype);
    block.weights.shared_w2 = Tensor::empty(dtype, {1, c.hidden_size, rows});
    copy_tensor(down, block.weights.shared_w2.view().reshape({c.hidden_size, rows}));
  }
  return block;
}

class HfGolden : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!fs::exists(kGolden)) GTEST_SKIP() << "golden data not found at " << kGolden << " (../shared/golden)";
  }
};

TEST_P(HfGolden, RouterMatchesTransformers) {
  const GoldenBlock block = load_block(GetParam(), DType::fp32);
  const SafetensorsFile io = SafetensorsFile::open(kGolden / (GetParam() + "_fp32.safetensors"));
  const Tensor logits = io.load_as("io.router_logits", DType::fp32);
  const Tensor golden_weights = io.load_as("io.gate_out1", DType::fp32);
  const Tensor golden_ids = io.load("io.gate_out2");  // int64, HF's order within a row
  const std::int64_t tokens = logits.size(0);
  const int k = block.config.routing.top_k;
  const Tensor ids = Tensor::empty(DType::int32, {tokens, k});
  const Tensor weights = Tensor::empty(DType::fp32, {tokens, k});
  route(logits, block.config.routing, block.weights.correction_bias, ids, weights);
  for (std::int64_t t = 0; t < tokens; ++t) {
    std::vector<std::pair<std::int64_t, float>> ours, theirs;
    for (int slot = 0; slot < k; ++slot) {
      ours.emplace_back(ids.data_as<std::int32_t>()[t * k + slot], weights.data_as<float>()[t * k + slot]);
      theirs.emplace_back(golden_ids.data_as<std::int64_t>()[t * k + slot], golden_weights.data_as<float>()[t * k + slot]);
    }
    std::sort(ours.begin(), ours.end());
    std::sort(theirs.begin(), theirs.end());
    for (int slot = 0; slot < k; ++slot) {
      ASSERT_EQ(ours[slot].first, theirs[slot].first) << "token " << t;
      EXPECT_NEAR(ours[slot].second, theirs[slot].second, 1e-5 * std::abs(theirs[slot].second) + 1e-7) << "token " << t;
    }
  }
}

TEST_P(HfGolden, EveryBackendMatchesTheBlockOutput) {
  const Tensor truth = SafetensorsFile::open(kGolden / (GetParam() + "_fp32.safetensors")).load("io.output");
  std::vector<double> reference(truth.data_as<float>(), truth.data_as<float>() + truth.numel());
  int checked = 0;
  for (DType dtype : {DType::fp32, DType::bf16}) {
    GoldenBlock block = load_block(GetParam(), dtype);
    const std::string run = dtype == DType::fp32 ? "_fp32.safetensors" : "_bf16.safetensors";
    const Tensor hidden = SafetensorsFile::open(kGolden / (GetParam() + run)).load_as("io.input", dtype);
    const double tolerance = dtype == DType::fp32 ? 1e-5 : 1e-2;
    for (DispatchMode mode : {DispatchMode::local, DispatchMode::local_batched}) {
      block.config.parallel.dispatch = mode;
      for (const Candidate& candidate : evaluate_backends(block.config, Platform::detect())) {
        if (!candidate.support.ok) continue;
        SCOPED_TRACE(candidate.backend->id + " " + std::string(to_string(dtype)) + " " + std::string(to_string(mode)));
        FusedMoeLayer layer(block.config, LayerOptions{.backend = candidate.backend->id, .shared_experts_backend = {}});
        layer.set_weights(block.weights);
        layer.finalize_weights();
        const Tensor out = Tensor::empty(dtype, {hidden.size(0), hidden.size(1)});
        fill_nan(out);
        layer.forward(hidden, out);
        const ErrorStats stats = compare_to_reference(out, reference);
        EXPECT_LT(stats.relative_error, tolerance) << "max abs " << stats.max_abs_error;
        ++checked;
      }
    }
  }
  EXPECT_GE(checked, 6);
}

INSTANTIATE_TEST_SUITE_P(Blocks, HfGolden, ::testing::Values("qwen3moe_block", "dsv3_block", "qwen2moe_block"));

}  // namespace
}  // namespace fusedmoe
