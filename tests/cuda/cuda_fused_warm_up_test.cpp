// Decode's L2 warm-up (backends/cuda_fused/kernels/l2_warm_up.cuh) guesses each GEMM1 row block's expert from
// the top-k ids before the align step has run. A wrong guess changes no result (CudaFusedWarm in
// cuda_fused_test.cpp shows the bits), only which weights reach the L2 early, so only this test can see it:
// wherever the warm-up runs (M <= block_m, distinct ids per token, at most 32 pairs), every guess must be
// the align's block_expert, with an expert map, ids outside [0, E) and experts that are not local.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "backends/cuda_fused/kernels/launch.hpp"
#include "cuda/cuda_testing.hpp"
#include "cuda/warm_up_probe.hpp"

namespace fusedmoe {
namespace {

struct WarmUpCase {
  std::string label;
  int tokens;
  int top_k;
  int experts;        // global E
  int local_experts;  // E_local
  bool map;           // global g -> g / 4 when g % 4 == 0, else -1 (needs E_local >= E / 4)
  int foreign_slots;  // per token, slots whose id is -1 or >= E (not routed here)
};

Tensor device_int32(const std::vector<std::int32_t>& values) {
  Tensor host = Tensor::empty(DType::int32, {static_cast<std::int64_t>(values.size())});
  std::copy(values.begin(), values.end(), host.data_as<std::int32_t>());
  return testing::to_device(host);
}

std::vector<std::int32_t> host_int32(const Tensor& device) {
  const Tensor host = testing::to_host(device);
  const auto* data = host.data_as<const std::int32_t>();
  return {data, data + host.numel()};
}

// Distinct ids per token; the last `foreign_slots` of each token are -1 or E + something.
std::vector<std::int32_t> random_ids(const WarmUpCase& c, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::int32_t> all(static_cast<std::size_t>(c.experts)), ids;
  std::iota(all.begin(), all.end(), 0);
  for (int token = 0; token < c.tokens; ++token) {
    std::shuffle(all.begin(), all.end(), rng);
    for (int slot = 0; slot < c.top_k; ++slot) {
      const bool foreign = slot >= c.top_k - c.foreign_slots;
      ids.push_back(foreign ? (slot % 2 == 0 ? -1 : c.experts + slot) : all[static_cast<std::size_t>(slot)]);
    }
  }
  return ids;
}

TEST(CudaFusedWarmUp, GuessesTheAlignsExpertOfEveryRowBlock) {
  FUSEDMOE_REQUIRE_CUDA();
  constexpr int kBlockM = 16;  // the decode tiles' rows; M <= block_m is the warm-up's condition
  const std::vector<WarmUpCase> cases = {
      {"m1_k8", 1, 8, 64, 64, false, 0},
      {"m8_k4_shared_experts", 8, 4, 16, 16, false, 0},
      {"m16_k2", 16, 2, 128, 128, false, 0},
      {"map_m4_k8", 4, 8, 256, 64, true, 0},
      {"foreign_ids_m4_k8", 4, 8, 64, 64, false, 3},
      {"fewer_local_than_global", 3, 8, 64, 20, false, 1},
      {"nothing_local", 2, 3, 8, 8, false, 3},
      {"m1_k1", 1, 1, 512, 512, false, 0},
  };
  for (const WarmUpCase& c : cases) {
    SCOPED_TRACE(c.label);
    const std::int64_t pairs = static_cast<std::int64_t>(c.tokens) * c.top_k;
    ASSERT_LE(pairs, 32);
    ASSERT_LE(c.tokens, kBlockM);
    for (std::uint32_t seed = 1; seed <= 20; ++seed) {
      SCOPED_TRACE(seed);
      const Tensor ids = device_int32(random_ids(c, seed));
      Tensor map;
      if (c.map) {
        std::vector<std::int32_t> global_to_local(static_cast<std::size_t>(c.experts));
        for (int g = 0; g < c.experts; ++g)
          global_to_local[static_cast<std::size_t>(g)] = g % 4 == 0 ? g / 4 : -1;
        map = device_int32(global_to_local);
      }
      const std::int64_t max_blocks =
          (pairs + std::min<std::int64_t>(c.local_experts, pairs) * (kBlockM - 1) + kBlockM - 1) / kBlockM;
      Tensor counts = testing::empty_poisoned(DType::int32, {c.local_experts + 1});
      Tensor offsets = testing::empty_poisoned(DType::int64, {c.local_experts + 1});
      Tensor sorted_ids = testing::empty_poisoned(DType::int32, {max_blocks * kBlockM});
      Tensor block_expert = testing::empty_poisoned(DType::int32, {max_blocks});
      Tensor guessed = testing::empty_poisoned(DType::int32, {max_blocks});
      const std::int32_t* map_data = c.map ? map.data_as<const std::int32_t>() : nullptr;
      cuda_fused::launch_align(cuda_fused::AlignLaunch{.topk_ids = ids.data_as<const std::int32_t>(),
                                                       .num_pairs = pairs,
                                                       .expert_map = map_data,
                                                       .num_experts = c.experts,
                                                       .num_local_experts = c.local_experts,
                                                       .block_m = kBlockM,
                                                       .counts = counts.data_as<std::int32_t>(),
                                                       .offsets = offsets.data_as<std::int64_t>(),
                                                       .sorted_ids = sorted_ids.data_as<std::int32_t>(),
                                                       .block_expert = block_expert.data_as<std::int32_t>(),
                                                       .max_blocks = max_blocks,
                                                       .single_block = true},
                               nullptr);
      const cuda_fused::L2WarmUp warm{.topk_ids = ids.data_as<const std::int32_t>(),
                                      .expert_map = map_data,
                                      .num_pairs = static_cast<int>(pairs),
                                      .num_experts = c.experts,
                                      .num_local_experts = c.local_experts,
                                      .panels = 1};
      testing::check_cuda(
          testing::warm_up_experts(warm, static_cast<int>(max_blocks), guessed.data_as<std::int32_t>()),
          "warm_up_experts");
      const std::vector<std::int32_t> expected = host_int32(block_expert), actual = host_int32(guessed);
      EXPECT_EQ(actual, expected);
      // The align must have used at least one block here unless no id is local, so equal guesses are not
      // merely two columns of -1.
      const bool any_local =
          std::any_of(expected.begin(), expected.end(), [](std::int32_t e) { return e >= 0; });
      EXPECT_EQ(any_local, c.label != "nothing_local");
    }
  }
}

}  // namespace
}  // namespace fusedmoe
