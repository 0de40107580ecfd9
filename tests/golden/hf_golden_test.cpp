// The layer against Hugging Face transformers' own MoE blocks (../shared/golden): a reference
// nobody on this project wrote. fp32: relative error < 1e-5; bf16: < 1e-2 against the fp32 truth.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "fusedmoe/hf.hpp"
#include "fusedmoe/safetensors.hpp"
#include "testing/moe_case.hpp"

namespace fusedmoe {
namespace {

namespace fs = std::filesystem;
const fs::path kGolden = FUSEDMOE_GOLDEN_DIR;

using GoldenBlock = HfBlock;

// Through the library's own Hugging Face loader: config.json decides family, routing and sizes.
GoldenBlock load_block(const std::string& name, DType dtype) {
  return load_hf_block(kGolden / (name + "_bf16.safetensors"), kGolden / (name + ".json"), dtype);
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
      theirs.emplace_back(golden_ids.data_as<std::int64_t>()[t * k + slot],
                          golden_weights.data_as<float>()[t * k + slot]);
    }
    std::sort(ours.begin(), ours.end());
    std::sort(theirs.begin(), theirs.end());
    for (int slot = 0; slot < k; ++slot) {
      ASSERT_EQ(ours[slot].first, theirs[slot].first) << "token " << t;
      EXPECT_NEAR(ours[slot].second, theirs[slot].second, 1e-5 * std::abs(theirs[slot].second) + 1e-7)
          << "token " << t;
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
        SCOPED_TRACE(candidate.backend->id + " " + std::string(to_string(dtype)) + " " +
                     std::string(to_string(mode)));
        FusedMoeLayer layer(block.config, LayerOptions::with_backend(candidate.backend->id));
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

INSTANTIATE_TEST_SUITE_P(Blocks, HfGolden,
                         ::testing::Values("qwen3moe_block", "dsv3_block", "qwen2moe_block"));

}  // namespace
}  // namespace fusedmoe

namespace fusedmoe {
namespace {

// The tiny Qwen3-MoE checkpoint (per-expert hub names): each layer's MoE block output and routing.
TEST(HfGoldenCheckpoint, TinyQwen3MoeLayersMatchTransformers) {
  if (!fs::exists(kGolden / "qwen3moe_tiny")) GTEST_SKIP() << "golden checkpoint not found under " << kGolden;
  const HfCheckpoint checkpoint = HfCheckpoint::open(kGolden / "qwen3moe_tiny");
  const SafetensorsFile io = SafetensorsFile::open(kGolden / "qwen3moe_tiny_io.safetensors");
  ASSERT_EQ(checkpoint.num_layers(), 2);
  for (int layer = 0; layer < 2; ++layer) {
    const std::string prefix = "layers." + std::to_string(layer) + ".mlp.";
    const Tensor truth = io.load_as(prefix + "output", DType::fp32);
    const std::vector<double> reference(truth.data_as<float>(), truth.data_as<float>() + truth.numel());
    const Tensor golden_ids = io.load(prefix + "router_topk_ids");
    for (DType dtype : {DType::fp32, DType::bf16}) {
      SCOPED_TRACE("layer " + std::to_string(layer) + " " + std::string(to_string(dtype)));
      FusedMoeLayer moe(checkpoint.moe_config(layer, dtype));
      moe.set_weights(checkpoint.load_moe_weights(layer, dtype));
      moe.finalize_weights();
      const Tensor hidden = io.load_as(prefix + "input", dtype);
      const std::int64_t tokens = hidden.size(0);
      const int k = moe.config().routing.top_k;
      const Tensor out = Tensor::empty(dtype, {tokens, hidden.size(1)});
      const Tensor ids = Tensor::empty(DType::int32, {tokens, k});
      const Tensor weights = Tensor::empty(DType::fp32, {tokens, k});
      moe.forward(hidden, out, {}, RoutingOutputs{ids, weights});
      EXPECT_LT(compare_to_reference(out, reference).relative_error, dtype == DType::fp32 ? 1e-5 : 1e-2);
      if (dtype == DType::fp32) {
        for (std::int64_t t = 0; t < tokens; ++t) {
          std::vector<std::int64_t> ours, theirs;
          for (int slot = 0; slot < k; ++slot) {
            ours.push_back(ids.data_as<std::int32_t>()[t * k + slot]);
            theirs.push_back(golden_ids.data_as<std::int64_t>()[t * k + slot]);
          }
          std::sort(ours.begin(), ours.end());
          std::sort(theirs.begin(), theirs.end());
          EXPECT_EQ(ours, theirs) << "token " << t;
        }
      }
    }
  }
}

}  // namespace
}  // namespace fusedmoe
