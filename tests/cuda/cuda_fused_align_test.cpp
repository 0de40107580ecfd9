// cuda_fused's align step (backends/cuda_fused/kernels/align.cuh) on its own, both ways (one block; count +
// scan by the last block to finish, then the block-aggregated scatter), against a host model: every local
// pair lands in its expert's run exactly once, each local pair's position names its row and the others' are
// left alone, runs are padded to block_m with -1 and laid out in ascending
// expert id (or, in parity order, those of an even number of blocks first), block_expert names each
// used block's expert and -1 past them, each block's run (raster.hpp) is its expert's blocks (or itself,
// without an expert), the ticket after the counts is left at zero for the next call, and the words handed
// over for zeroing are zero. The forward tests see the align only through results; a lost or
// doubled pair in an odd block would often cancel out there.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "backends/cuda_fused/kernels/launch.hpp"
#include "cuda/cuda_testing.hpp"

namespace fusedmoe {
namespace {

struct AlignCase {
  std::string label;
  std::int64_t pairs;
  int experts;        // global E
  int local_experts;  // E_local; the map sends global g to g % (E / E_local) == 0 ? g / (E / E_local) : -1
  int block_m;
  bool map = false;
  int hot_expert = -1;    // >= 0: every pair on this global id
  int foreign_every = 0;  // > 0: every n-th pair's id is -1 or >= E
};

Tensor device_int32(const std::vector<std::int32_t>& values) {
  Tensor host = Tensor::empty(DType::int32, {static_cast<std::int64_t>(values.size())});
  std::copy(values.begin(), values.end(), host.data_as<std::int32_t>());
  return testing::to_device(host);
}

template <class T>
std::vector<T> host_values(const Tensor& device) {
  const Tensor host = testing::to_host(device);
  const auto* data = host.data_as<const T>();
  return {data, data + host.numel()};
}

void check_align(const AlignCase& c, bool single_block, bool parity_order, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> expert(0, c.experts - 1);
  std::vector<std::int32_t> ids(static_cast<std::size_t>(c.pairs));
  for (std::int64_t pair = 0; pair < c.pairs; ++pair) {
    std::int32_t id = c.hot_expert >= 0 ? c.hot_expert : expert(rng);
    if (c.foreign_every > 0 && pair % c.foreign_every == 0) id = pair % 2 == 0 ? -1 : c.experts + 3;
    ids[static_cast<std::size_t>(pair)] = id;
  }
  const int stride = c.experts / c.local_experts;
  std::vector<std::int32_t> map_values(static_cast<std::size_t>(c.experts));
  for (int g = 0; g < c.experts; ++g)
    map_values[static_cast<std::size_t>(g)] = g % stride == 0 ? g / stride : -1;
  auto local_of = [&](std::int32_t id) {
    if (id < 0 || id >= c.experts) return -1;
    if (!c.map) return id < c.local_experts ? id : -1;
    return map_values[static_cast<std::size_t>(id)];
  };

  // The host model: each local expert's pairs, in pair order.
  std::vector<std::vector<std::int32_t>> runs(static_cast<std::size_t>(c.local_experts));
  for (std::int64_t pair = 0; pair < c.pairs; ++pair) {
    const int local = local_of(ids[static_cast<std::size_t>(pair)]);
    if (local >= 0) runs[static_cast<std::size_t>(local)].push_back(static_cast<std::int32_t>(pair));
  }
  // The runs' order: ascending id, or in parity order the experts of an even number of blocks first.
  std::vector<int> order;
  for (int pass = 0; pass < (parity_order ? 2 : 1); ++pass) {
    for (int e = 0; e < c.local_experts; ++e) {
      const auto blocks =
          (static_cast<std::int64_t>(runs[static_cast<std::size_t>(e)].size()) + c.block_m - 1) / c.block_m;
      if (!parity_order || blocks % 2 == pass) order.push_back(e);
    }
  }
  const std::int64_t max_blocks =
      (c.pairs + std::min<std::int64_t>(c.local_experts, c.pairs) * (c.block_m - 1) + c.block_m - 1) /
      c.block_m;
  const Tensor device_ids = device_int32(ids);
  const Tensor map = c.map ? device_int32(map_values) : Tensor{};
  Tensor counts = testing::empty_poisoned(DType::int32, {c.local_experts + 1});
  if (single_block) {  // the one-block align keeps its bins in shared memory: the ticket must stay untouched
    testing::check_cuda(cudaMemset(counts.data(), 0, counts.nbytes()), "cudaMemset");
  }
  Tensor offsets = testing::empty_poisoned(DType::int64, {c.local_experts + 1});
  Tensor sorted_ids = testing::empty_poisoned(DType::int32, {max_blocks * c.block_m});
  Tensor block_expert = testing::empty_poisoned(DType::int32, {max_blocks});
  Tensor block_runs = testing::empty_poisoned(DType::int32, {4 * max_blocks});  // cuda_fused::BlockRun
  Tensor pair_positions = testing::empty_poisoned(DType::int32, {c.pairs});
  const std::int32_t poisoned_position = host_values<std::int32_t>(pair_positions).front();
  constexpr std::int64_t kZeroWords = 1000;
  Tensor zero_words = testing::empty_poisoned(DType::int64, {kZeroWords});
  for (int call = 0; call < 2; ++call) {  // the second call finds the first one's ticket and counts
    SCOPED_TRACE("call " + std::to_string(call));
    testing::poison(sorted_ids);
    testing::poison(block_expert);
    testing::poison(block_runs);
    testing::poison(zero_words);
    testing::poison(pair_positions);
    cuda_fused::launch_align(
        cuda_fused::AlignLaunch{
            .topk_ids = device_ids.data_as<const std::int32_t>(),
            .num_pairs = c.pairs,
            .expert_map = c.map ? map.data_as<const std::int32_t>() : nullptr,
            .num_experts = c.experts,
            .num_local_experts = c.local_experts,
            .block_m = c.block_m,
            .counts = counts.data_as<std::int32_t>(),
            .offsets = offsets.data_as<std::int64_t>(),
            .sorted_ids = sorted_ids.data_as<std::int32_t>(),
            .block_expert = block_expert.data_as<std::int32_t>(),
            .max_blocks = max_blocks,
            .single_block = single_block,
            .zero_words = zero_words.data_as<std::uint64_t>(),
            .zero_word_count = kZeroWords,
            .pair_positions = pair_positions.data_as<std::int32_t>(),
            .block_runs = reinterpret_cast<cuda_fused::BlockRun*>(block_runs.data_as<std::int32_t>()),
            .parity_order = parity_order},
        nullptr);
    testing::check_cuda(cudaDeviceSynchronize(), "align");

    const auto got_offsets = host_values<std::int64_t>(offsets);
    const auto got_sorted = host_values<std::int32_t>(sorted_ids);
    const auto got_blocks = host_values<std::int32_t>(block_expert);
    const auto got_positions = host_values<std::int32_t>(pair_positions);
    for (std::int64_t pair = 0; pair < c.pairs; ++pair) {
      const std::int32_t position = got_positions[static_cast<std::size_t>(pair)];
      if (local_of(ids[static_cast<std::size_t>(pair)]) < 0) {
        ASSERT_EQ(position, poisoned_position) << "pair " << pair << " has no local expert: left alone";
      } else {
        ASSERT_TRUE(position >= 0 && position < max_blocks * c.block_m)
            << "pair " << pair << ": " << position;
        ASSERT_EQ(got_sorted[static_cast<std::size_t>(position)], pair) << "pair " << pair << "'s position";
      }
    }
    const auto got_runs = host_values<std::int32_t>(block_runs);  // first, end, expert, rows per block
    auto expect_run = [&](std::int64_t block, std::int64_t first, std::int64_t end, int expert,
                          std::int64_t rows) {
      const auto at = static_cast<std::size_t>(4 * block);
      ASSERT_EQ(got_runs[at], first) << "block " << block << "'s run's first block";
      ASSERT_EQ(got_runs[at + 1], end) << "block " << block << "'s run's end";
      ASSERT_EQ(got_runs[at + 2], expert) << "block " << block << "'s run's expert";
      ASSERT_EQ(got_runs[at + 3], rows) << "block " << block << "'s run's routed rows";
    };
    const auto got_counts = host_values<std::int32_t>(counts);
    EXPECT_EQ(got_counts.back(), 0) << "the ticket after the counts must be left at zero";
    const auto got_zero = host_values<std::int64_t>(zero_words);
    EXPECT_EQ(std::count(got_zero.begin(), got_zero.end(), 0), kZeroWords);

    std::int64_t row = 0;
    for (const int e : order) {
      SCOPED_TRACE("expert " + std::to_string(e));
      const auto& run = runs[static_cast<std::size_t>(e)];
      const std::int64_t count = static_cast<std::int64_t>(run.size());
      const std::int64_t padded = (count + c.block_m - 1) / c.block_m * c.block_m;
      ASSERT_EQ(got_offsets[static_cast<std::size_t>(e)], row);
      std::vector<std::int32_t> landed(got_sorted.begin() + row, got_sorted.begin() + row + count);
      std::sort(landed.begin(), landed.end());
      ASSERT_EQ(landed, run) << "the expert's pairs, each exactly once";
      for (std::int64_t r = row + count; r < row + padded; ++r) {
        ASSERT_EQ(got_sorted[static_cast<std::size_t>(r)], -1) << "padding row " << r;
      }
      for (std::int64_t block = row / c.block_m; block < (row + padded) / c.block_m; ++block) {
        ASSERT_EQ(got_blocks[static_cast<std::size_t>(block)], e) << "block " << block;
        expect_run(block, row / c.block_m, (row + padded) / c.block_m, e, count);
      }
      row += padded;
    }
    ASSERT_EQ(got_offsets.back(), row);
    for (std::int64_t block = row / c.block_m; block < max_blocks; ++block) {
      ASSERT_EQ(got_blocks[static_cast<std::size_t>(block)], -1) << "unused block " << block;
      expect_run(block, block, block + 1, -1, 0);
    }
  }
}

TEST(CudaFusedAlign, EveryPairOnceInItsExpertsPaddedRun) {
  FUSEDMOE_REQUIRE_CUDA();
  const std::vector<AlignCase> cases = {
      {"decode", 8, 64, 64, 16},
      {"olmoe_m256", 2048, 64, 64, 64},
      {"one_or_two_blocks", 4096, 64, 64, 64},  // one block: both parities in the single-block align
      {"qwen3_m1024", 8192, 128, 128, 128},
      {"qwen3_m4096_odd", 32768 + 77, 128, 128, 128},
      {"many_blocks", 264000, 128, 128, 128},
      {"map_foreign", 30011, 80, 20, 64, true, -1, 7},
      {"all_on_one_expert", 100000, 16, 16, 128, false, 5},
      {"nothing_local", 5000, 32, 8, 16, true, 1},  // global 1 maps to -1 (stride 4)
      {"global_bins", 50000, 9000, 9000, 16},       // E_local beyond the shared-memory bins
      {"two_scan_chunks", 3000, 2048, 2048, 16},    // the one-block align's scan over 2 x 1024 experts
      {"partial_chunk", 4000, 1025, 1025, 32},      // 1024 experts and one: a warp's second chunk of one
      {"wg192_rows", 20000, 128, 128, 192},         // the three-warpgroup tile's rows (not a power of two)
      // Decode batches:
      {"qwen3_m1", 8, 128, 128, 16},
      {"mixtral_m1", 2, 8, 8, 64},
      {"one_pair", 1, 256, 256, 128},
      {"m8_k8_e256", 64, 256, 256, 64},
      {"m32_k8", 256, 128, 128, 16},
      {"small_one_expert", 256, 64, 64, 16, false, 9},
      {"small_map_foreign", 200, 80, 20, 64, true, -1, 3},
      {"small_many_experts", 130, 2048, 2048, 192},
      {"small_odd_experts", 77, 33, 33, 32},
  };
  for (const AlignCase& c : cases) {
    for (bool single : {true, false}) {
      for (bool parity : {false, true}) {
        SCOPED_TRACE(c.label + (single ? " single" : " multi") + (parity ? " parity" : ""));
        check_align(c, single, parity, 7);
        if (HasFatalFailure()) return;
      }
    }
  }
}

}  // namespace
}  // namespace fusedmoe
