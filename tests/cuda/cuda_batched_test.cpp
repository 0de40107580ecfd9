// cuda_batched (the batched-format CUDA Experts) against fp64: alone, on hand-made slabs whose device-side
// counts include 0, full slabs and values outside [0, capacity] (clamped), with NaN in the slab rows past the
// counts and in the output; and behind the local_batched dispatch on the GPU through the modular kernel.
// Also: every tile gives the same bits, results do not depend on the batch, CUDA-graph capture and replay
// equal eager, and (no GPU needed) supports(), the oracle's choice and the tile choice.
#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <optional>

#include "backends/cuda_batched/experts.hpp"
#include "backends/cuda_fused/kernels/tile_table.hpp"
#include "cuda/gpu_case_testing.hpp"
#include "cuda/tile_testing.hpp"

namespace fusedmoe {
namespace {

using cuda_fused::TileId;
using testing::GpuCase;
using testing::kGpu;
using testing::RoutingPattern;
using testing::tile_available_here;
using testing::wgmma_available;

const BackendInfo& cuda_batched() {
  return testing::registered_backend("cuda_batched");
}

constexpr std::uint16_t kNanBits = 0xffff;  // what testing::poison writes into bf16

// ---- the Experts alone, on hand-made slabs ---------------------------------------------------------------

struct SlabCase {
  std::string label;
  std::int64_t experts, capacity, hidden, intermediate;
  std::vector<std::int32_t> counts;  // per expert, repeated cyclically; some outside [0, capacity] on purpose
  Activation activation = Activation::silu;
  std::int64_t misalign = 0;  // bf16 elements by which hidden and expert_out start past an aligned address
};

void PrintTo(const SlabCase& c, std::ostream* os) {
  *os << c.label << "(E=" << c.experts << ",capacity=" << c.capacity << ",H=" << c.hidden
      << ",I=" << c.intermediate << ",misalign=" << c.misalign << ")";
}

std::vector<SlabCase> slab_cases() {
  return {
      {"h96_i40", 8, 24, 96, 40, {0, 24, 5, 1, 17, 24, 0, 3}},
      {"m1", 4, 1, 64, 32, {1, 0, 1, 0}},
      {"all_on_one_expert", 8, 40, 64, 48, {40, 0, 0, 0, 0, 0, 0, 0}},
      {"all_empty", 4, 16, 64, 32, {0}},
      {"counts_out_of_range", 6, 20, 64, 32, {25, -3, 20, INT_MAX, 0, INT_MIN}},
      {"h100_padded_input", 5, 19, 100, 40, {19, 7, 0, 1, 12}},            // H % 8 = 4
      {"odd_h_pitched_output", 5, 33, 97, 29, {33, 7, 0, 1, 16}},          // H odd
      {"odd_h_misaligned", 3, 9, 67, 24, {9, 4, 1}, Activation::silu, 1},  // 2-byte aligned bases
      {"e256", 256, 12, 64, 32, {0, 1, 2, 3, 5, 7, 11, 12, 13, 4, 9}},
      {"tall_slabs", 3, 300, 128, 64, {300, 129, 1}},
      {"gelu", 6, 17, 48, 40, {17, 3, 0, 9, 16, 1}, Activation::gelu},
      // H % 8 = 4 in slabs tall enough for the wgmma tiles (whose epilogues store 16-byte groups).
      {"h100_tall_slabs", 3, 70, 100, 40, {70, 33, 1}},
  };
}

std::int64_t clamped(std::int32_t count, std::int64_t capacity) {
  return std::clamp<std::int64_t>(count, 0, capacity);
}

// The model, the slabs (NaN past each count) and the converted weights of a case.
struct Slabs {
  SlabCase c;
  MoeConfig config;
  MoeWeights weights;
  std::vector<std::int32_t> counts;  // [E], as given to the Experts
  Tensor hidden;                     // [E * capacity, H] on the host
  std::shared_ptr<const ExpertWeights> converted;

  explicit Slabs(const SlabCase& slab_case) : c(slab_case) {
    config = testing::make_config(c.experts, static_cast<int>(std::min<std::int64_t>(2, c.experts)), c.hidden,
                                  c.intermediate, DType::bf16, DType::bf16, c.activation);
    config.device = kGpu;
    config.parallel.dispatch = DispatchMode::local_batched;
    weights = random_weights(config, 51);
    for (std::int64_t e = 0; e < c.experts; ++e) counts.push_back(c.counts[e % c.counts.size()]);
    hidden = random_hidden(config, c.experts * c.capacity, 52);
    auto* bits = hidden.data_as<std::uint16_t>();
    for (std::int64_t e = 0; e < c.experts; ++e) {
      for (std::int64_t i = clamped(counts[e], c.capacity); i < c.capacity; ++i)
        std::fill_n(bits + (e * c.capacity + i) * c.hidden, c.hidden, kNanBits);  // never to be read
    }
    converted = cuda_batched().convert_weights(testing::to_device(weights.w13),
                                               testing::to_device(weights.w2), config);
  }

  // One apply() with the tile forced or chosen; expert_out [E, capacity, H] as the device left it.
  Tensor run(std::optional<TileId> tile = std::nullopt) const {
    const std::int64_t experts = c.experts, capacity = c.capacity, width = c.hidden;
    const std::int64_t elements = experts * capacity * width;
    const Tensor hidden_buffer = Tensor::empty(DType::bf16, {elements + c.misalign}, kGpu);
    const TensorView slabs(hidden_buffer.data_as<std::uint16_t>() + c.misalign, DType::bf16,
                           {experts, capacity, width}, kGpu);
    copy_tensor(hidden.view().reshape({experts, capacity, width}), slabs);
    const Tensor out_buffer = testing::empty_poisoned(DType::bf16, {elements + c.misalign});
    const TensorView out(out_buffer.data_as<std::uint16_t>() + c.misalign, DType::bf16,
                         {experts, capacity, width}, kGpu);
    Tensor host_counts = Tensor::empty(DType::int32, {experts});
    std::copy(counts.begin(), counts.end(), host_counts.data_as<std::int32_t>());
    // Slot weights the Experts must ignore (the batched format returns unweighted rows).
    Tensor slot_weights = Tensor::empty(DType::fp32, {experts, capacity});
    std::fill_n(slot_weights.data_as<float>(), experts * capacity, 7.0f);
    const Tensor device_counts = testing::to_device(host_counts);
    const Tensor device_slot_weights = testing::to_device(slot_weights);

    DispatchedTokens dispatched;
    dispatched.format = ActivationFormat::batched;
    dispatched.hidden = slabs;
    dispatched.expert_num_tokens = device_counts;
    dispatched.topk_weights = device_slot_weights;
    cuda_batched::CudaBatchedExperts experts_under_test(config, tile);
    const ExpertsProblem problem{.format = ActivationFormat::batched,
                                 .num_tokens = capacity,
                                 .num_local_experts = experts,
                                 .num_experts = experts,
                                 .top_k = config.routing.top_k,
                                 .hidden_size = width,
                                 .intermediate_size = c.intermediate};
    const std::size_t bytes = std::max<std::size_t>(experts_under_test.workspace_bytes(problem), 1);
    const Tensor workspace = Tensor::empty(DType::uint8, {static_cast<std::int64_t>(bytes)}, kGpu);
    WorkspaceArena arena(workspace.data(), workspace.nbytes(), kGpu);
    experts_under_test.apply(dispatched, *converted, out, arena, ExecContext{});
    return testing::to_host(out);
  }

  // Rows below each clamped count against fp64 (each row is one token routed to its expert with weight 1);
  // the rows past the counts untouched (still NaN): nothing was written out of bounds.
  void expect_matches_reference(const Tensor& out) const {
    std::vector<std::int64_t> rows;
    std::vector<std::int32_t> row_expert;
    std::int64_t touched = 0;
    const auto* out_bits = out.data_as<const std::uint16_t>();
    for (std::int64_t e = 0; e < c.experts; ++e) {
      const std::int64_t valid = clamped(counts[e], c.capacity);
      for (std::int64_t i = 0; i < c.capacity; ++i) {
        const std::int64_t row = e * c.capacity + i;
        if (i < valid) {
          rows.push_back(row);
          row_expert.push_back(static_cast<std::int32_t>(e));
          continue;
        }
        for (std::int64_t column = 0; column < c.hidden; ++column)
          touched += out_bits[row * c.hidden + column] != kNanBits;
      }
    }
    EXPECT_EQ(touched, 0) << "values written past the counts";
    const auto count = static_cast<std::int64_t>(rows.size());
    if (count == 0) return;
    Tensor x = Tensor::empty(DType::bf16, {count, c.hidden}),
           got = Tensor::empty(DType::bf16, {count, c.hidden});
    Tensor ids = Tensor::empty(DType::int32, {count, 1}), ones = Tensor::empty(DType::fp32, {count, 1});
    const std::size_t row_bytes = static_cast<std::size_t>(c.hidden) * 2;
    for (std::int64_t r = 0; r < count; ++r) {
      std::memcpy(x.data_as<std::uint16_t>() + r * c.hidden,
                  hidden.data_as<std::uint16_t>() + rows[r] * c.hidden, row_bytes);
      std::memcpy(got.data_as<std::uint16_t>() + r * c.hidden, out_bits + rows[r] * c.hidden, row_bytes);
      ids.data_as<std::int32_t>()[r] = row_expert[r];
      ones.data_as<float>()[r] = 1.0f;
    }
    const ErrorStats stats = compare_to_reference(got, fp64_moe_reference(config, weights, x, ids, ones));
    EXPECT_EQ(stats.non_finite, 0) << "valid rows left unwritten (still NaN) or overflowed";
    EXPECT_LE(stats.relative_error, tolerance_for(DType::bf16)) << "max abs error " << stats.max_abs_error;
  }
};

// Valid rows only (the rest is unspecified by the format, though this implementation leaves it untouched).
bool valid_rows_equal(const Slabs& slabs, const Tensor& a, const Tensor& b) {
  const std::size_t row_bytes = static_cast<std::size_t>(slabs.c.hidden) * 2;
  for (std::int64_t e = 0; e < slabs.c.experts; ++e) {
    for (std::int64_t i = 0; i < clamped(slabs.counts[e], slabs.c.capacity); ++i) {
      const std::int64_t offset = (e * slabs.c.capacity + i) * slabs.c.hidden;
      if (std::memcmp(a.data_as<const std::uint16_t>() + offset, b.data_as<const std::uint16_t>() + offset,
                      row_bytes) != 0)
        return false;
    }
  }
  return true;
}

class CudaBatchedSlabs : public ::testing::TestWithParam<SlabCase> {};

TEST_P(CudaBatchedSlabs, ValidRowsMatchFp64AndRepeatBitwise) {
  FUSEDMOE_REQUIRE_CUDA();
  const Slabs slabs(GetParam());
  FUSEDMOE_REQUIRE_BACKEND(cuda_batched(), slabs.config);
  const Tensor first = slabs.run();
  slabs.expect_matches_reference(first);
  EXPECT_TRUE(valid_rows_equal(slabs, first, slabs.run())) << "two runs differ";
}

INSTANTIATE_TEST_SUITE_P(Cases, CudaBatchedSlabs, ::testing::ValuesIn(slab_cases()),
                         [](const auto& info) { return info.param.label; });

// Every tile of cuda_fused's table, forced (replaced by a fitting one where taller than the slabs): the
// mma.sync tiles give m16's bits, the wgmma tiles (where available) agree with each other and with fp64
// (their k16 steps may round differently from mma.sync's).
TEST(CudaBatchedTiles, EveryTileGivesTheSameRows) {
  FUSEDMOE_REQUIRE_CUDA();
  for (const SlabCase& c : {slab_cases()[0], slab_cases()[6], slab_cases()[9], slab_cases()[11]}) {
    SCOPED_TRACE(c.label);
    const Slabs slabs(c);
    FUSEDMOE_REQUIRE_BACKEND(cuda_batched(), slabs.config);
    const Tensor m16 = slabs.run(TileId::m16);
    slabs.expect_matches_reference(m16);
    std::optional<Tensor> first_wgmma;
    for (const cuda_fused::TileConfig& tile : cuda_fused::kTileConfigs) {
      if (!tile_available_here(tile)) continue;
      SCOPED_TRACE(tile.name);
      const Tensor forced = slabs.run(tile.id);
      slabs.expect_matches_reference(forced);
      const bool wgmma_ran = cuda_batched::fitted_tile(tile.id, c.capacity).wgmma;
      if (!wgmma_ran) {
        EXPECT_TRUE(valid_rows_equal(slabs, forced, m16));
      } else if (!first_wgmma) {
        first_wgmma = forced;
      } else {
        EXPECT_TRUE(valid_rows_equal(slabs, forced, *first_wgmma));
      }
    }
  }
}

// Rows of a 16-byte multiple are read in place: a base that is not 16-byte aligned is refused, not misread.
TEST(CudaBatchedSlabsAlignment, AMisalignedSlabOfAlignedRowsIsRefused) {
  FUSEDMOE_REQUIRE_CUDA();
  SlabCase c = slab_cases()[0];
  c.misalign = 1;
  const Slabs slabs(c);
  FUSEDMOE_REQUIRE_BACKEND(cuda_batched(), slabs.config);
  EXPECT_THROW(slabs.run(), InvalidArgument);
}

// ---- behind local_batched, through the modular kernel --------------------------------------------------

std::vector<GpuCase> layer_path_cases() {
  std::vector<GpuCase> cases = testing::grouped_cases();
  cases.push_back({"h96_i40", 33, 8, 96, 40, 2});
  cases.push_back({"h100_i40", 21, 8, 100, 40, 3});  // padded input, pitched output
  // H % 8 = 4 where the heuristic takes a wgmma tile (slabs of 256 rows, ~16 rows per expert; before
  // 6e244dd the wgmma GEMM2 refused the pitch of 100: bench/results/2026-11-29-h200-session33.md).
  cases.push_back({"h100_i512_wgmma", 640, 64, 100, 512, 4});
  cases.push_back({"h97_i40", 17, 8, 97, 40, 2});  // padded input, pitched output
  cases.push_back({"decode_m1_e256", 1, 256, 128, 64, 8});
  cases.push_back({"k_equals_e", 11, 4, 40, 20, 4});
  for (GpuCase& c : cases) c.dispatch = DispatchMode::local_batched;  // capacity: 256 tokens per chunk
  return cases;
}

class CudaBatched : public ::testing::TestWithParam<GpuCase> {};

TEST_P(CudaBatched, MatchesFp64ReferenceAndIsBitwiseRepeatable) {
  FUSEDMOE_REQUIRE_CUDA();
  testing::expect_matches_reference_and_repeats(cuda_batched(), GetParam());
}

INSTANTIATE_TEST_SUITE_P(Cases, CudaBatched, ::testing::ValuesIn(layer_path_cases()),
                         [](const auto& info) { return info.param.label; });

// The slab capacity follows the chunk (and the tile follows the capacity), yet a token's result must not
// depend on how many other tokens share its batch (within one kernel family: mma.sync here).
TEST(CudaBatchedBatches, ResultsDoNotDependOnBatchSize) {
  FUSEDMOE_REQUIRE_CUDA();
  const testing::ScopedEnv wgmma("FUSEDMOE_CUDA_BATCHED_WGMMA", "off");  // one kernel family (see above)
  GpuCase c{"batches", 700, 32, 192, 96, 4};
  c.dispatch = DispatchMode::local_batched;
  MoeConfig config = testing::gpu_case_config(c);
  config.parallel.batched_capacity = 512;  // 700 tokens: chunks of 512 and 188
  FUSEDMOE_REQUIRE_BACKEND(cuda_batched(), config);
  const MoeWeights weights = random_weights(config, 21);
  const Tensor hidden = random_hidden(config, c.tokens, 22);
  const testing::Routing routing =
      testing::make_routing(config, c.tokens, RoutingPattern::router, 23, weights, hidden);
  testing::BuiltKernel built = testing::build_kernel(cuda_batched(), config, testing::weights_on(weights), 0);
  const Tensor gpu_hidden = testing::to_device(hidden), gpu_ids = testing::to_device(routing.ids);
  const Tensor gpu_weights = testing::to_device(routing.weights);
  const Tensor whole = testing::empty_poisoned(DType::bf16, {c.tokens, c.hidden});
  built.kernel->forward(gpu_hidden, gpu_ids, gpu_weights, {}, *built.weights, whole);
  const Tensor expected = testing::to_host(whole);
  for (std::int64_t tokens : {1, 3, 16, 17, 40, 100, 333}) {
    SCOPED_TRACE("M=" + std::to_string(tokens));
    const Tensor part = testing::empty_poisoned(DType::bf16, {tokens, c.hidden});
    built.kernel->forward(gpu_hidden.view().slice_rows(0, tokens), gpu_ids.view().slice_rows(0, tokens),
                          gpu_weights.view().slice_rows(0, tokens), {}, *built.weights, part);
    const Tensor got = testing::to_host(part);
    EXPECT_EQ(std::memcmp(got.data(), expected.data(), static_cast<std::size_t>(tokens * c.hidden * 2)), 0);
  }
  const std::vector<double> reference =
      fp64_moe_reference(config, weights, hidden, routing.ids, routing.weights);
  EXPECT_LE(compare_to_reference(expected, reference).relative_error, tolerance_for(DType::bf16));
}

// local_batched's device path and cuda_batched read nothing back: the forward (three chunks) captures into a
// CUDA graph (global capture mode fails on any allocation or synchronisation), and replays equal eager runs.
TEST(CudaBatchedGraph, CaptureAndReplayEqualEager) {
  FUSEDMOE_REQUIRE_CUDA();
  GpuCase c{"graph", 77, 16, 96, 64, 4};
  c.dispatch = DispatchMode::local_batched;
  MoeConfig config = testing::gpu_case_config(c);
  config.parallel.batched_capacity = 32;
  FUSEDMOE_REQUIRE_BACKEND(cuda_batched(), config);
  const MoeWeights weights = random_weights(config, 31);
  const Tensor hidden_a = random_hidden(config, c.tokens, 32), hidden_b = random_hidden(config, c.tokens, 33);
  const testing::Routing routing =
      testing::make_routing(config, c.tokens, RoutingPattern::router, 34, weights, hidden_a);
  testing::BuiltKernel built = testing::build_kernel(cuda_batched(), config, testing::weights_on(weights));
  built.kernel->reserve(c.tokens);
  testing::TestStream stream;
  const Tensor input = testing::to_device(hidden_a), gpu_ids = testing::to_device(routing.ids);
  const Tensor gpu_weights = testing::to_device(routing.weights);

  const Tensor eager = testing::empty_poisoned(DType::bf16, {c.tokens, c.hidden});
  built.kernel->forward(input, gpu_ids, gpu_weights, {}, *built.weights, eager, stream.context());
  stream.synchronize();
  const Tensor eager_a = testing::to_host(eager);
  copy_tensor(hidden_b, input);
  built.kernel->forward(input, gpu_ids, gpu_weights, {}, *built.weights, eager, stream.context());
  stream.synchronize();
  const Tensor eager_b = testing::to_host(eager);

  const Tensor replayed = testing::empty_poisoned(DType::bf16, {c.tokens, c.hidden});
  cudaGraphExec_t graph = testing::capture_graph(stream.get(), [&] {
    built.kernel->forward(input, gpu_ids, gpu_weights, {}, *built.weights, replayed, stream.context());
  });
  for (const Tensor* host_input : {&hidden_a, &hidden_b, &hidden_a}) {
    testing::poison(replayed, stream.get());
    copy_tensor(*host_input, input);  // new contents, same buffer: the graph reads them on replay
    testing::check_cuda(cudaGraphLaunch(graph, stream.get()), "cudaGraphLaunch");
    stream.synchronize();
    EXPECT_TRUE(
        testing::bitwise_equal(testing::to_host(replayed), host_input == &hidden_b ? eager_b : eager_a));
  }
  cudaGraphExecDestroy(graph);
  const std::vector<double> reference =
      fp64_moe_reference(config, weights, hidden_a, routing.ids, routing.weights);
  EXPECT_LE(compare_to_reference(eager_a, reference).relative_error, tolerance_for(DType::bf16));
}

// ---- host-only questions (no GPU needed) ---------------------------------------------------------------

TEST(CudaBatchedSupports, StatesWhatItCannotDo) {
  const BackendInfo& backend = cuda_batched();
  const Platform platform = testing::synthetic_h100();
  MoeConfig config = testing::make_config(8, 2, 64, 32);
  config.device = kGpu;
  EXPECT_TRUE(backend.supports(config, platform, ActivationFormat::batched).ok);
  EXPECT_EQ(backend.supports(config, platform, ActivationFormat::standard).reason,
            "consumes the batched format; the dispatch delivers standard");
  MoeConfig fp32 = config;
  fp32.weight_dtype = fp32.act_dtype = DType::fp32;
  EXPECT_EQ(backend.supports(fp32, platform, ActivationFormat::batched).reason,
            "needs bf16 weights; weight_dtype is fp32");
  MoeConfig fp16_act = config;
  fp16_act.act_dtype = DType::fp16;
  EXPECT_EQ(backend.supports(fp16_act, platform, ActivationFormat::batched).reason,
            "needs bf16 activations; act_dtype is fp16");
  Platform old = platform;
  old.cuda.compute_capability = 75;
  EXPECT_NE(backend.supports(config, old, ActivationFormat::batched).reason.find("sm_75"), std::string::npos);
  Platform none = platform;
  none.cuda = CudaInfo{};
  none.cuda.reason = "synthetic";
  EXPECT_EQ(backend.supports(config, none, ActivationFormat::batched).reason, "no CUDA device: synthetic");
  MoeConfig on_cpu = config;
  on_cpu.device = Device::cpu();
  EXPECT_NE(backend.supports(on_cpu, platform, ActivationFormat::batched).reason.find("runs on CUDA"),
            std::string::npos);
}

TEST(CudaBatchedSupports, TheOracleSelectsItForTheBatchedDispatchOnly) {
  MoeConfig config = testing::make_config(16, 4, 96, 40);
  config.device = kGpu;
  config.parallel.dispatch = DispatchMode::local_batched;
  EXPECT_EQ(select_backend(config, testing::synthetic_h100()).backend->id, "cuda_batched");
  config.parallel.dispatch = DispatchMode::local;
  EXPECT_EQ(select_backend(config, testing::synthetic_h100()).backend->id, "cuda_fused");
}

TEST(CudaBatchedTileChoice, FollowsTheExpectedFillAndNeverExceedsTheSlab) {
  using cuda_batched::BatchedTileProblem;
  using cuda_batched::choose_tile;
  // Decode: a token or two per expert -> 16-row blocks.
  EXPECT_EQ(choose_tile(BatchedTileProblem{.capacity = 4,
                                           .top_k = 8,
                                           .num_experts = 128,
                                           .num_local_experts = 128,
                                           .intermediate_padded = 768,
                                           .num_sms = 132})
                .id,
            TileId::m16);
  // Prefill: 8192 tokens, k = 8 over 128 experts, ~512 rows each -> 128-row blocks.
  EXPECT_EQ(choose_tile(BatchedTileProblem{.capacity = 8192,
                                           .top_k = 8,
                                           .num_experts = 128,
                                           .num_local_experts = 128,
                                           .intermediate_padded = 768,
                                           .num_sms = 132})
                .id,
            TileId::m128);
  // Few blocks for 132 SMs: stepped down to thinner blocks.
  EXPECT_EQ(choose_tile(BatchedTileProblem{.capacity = 40,
                                           .top_k = 8,
                                           .num_experts = 8,
                                           .num_local_experts = 8,
                                           .intermediate_padded = 64,
                                           .num_sms = 132})
                .id,
            TileId::m16);
  // Whatever the capacity, the chosen tile is no taller than the slab rounded up to 16 rows.
  for (std::int64_t capacity = 1; capacity <= 600; ++capacity) {
    const cuda_fused::TileConfig tile = choose_tile(BatchedTileProblem{.capacity = capacity,
                                                                       .top_k = 1,
                                                                       .num_experts = 1,
                                                                       .num_local_experts = 1,
                                                                       .intermediate_padded = 4096,
                                                                       .num_sms = 1});
    EXPECT_TRUE(cuda_batched::tile_fits(tile, capacity)) << "capacity " << capacity << ": " << tile.name;
    EXPECT_LE(tile.block_m, (capacity + 15) / 16 * 16) << "capacity " << capacity;
  }
  // Hopper: cuda_fused's wgmma tiles from 14 rows per expert on, while they fit the slabs.
  auto on_hopper = [&](std::int64_t capacity, std::int64_t experts, std::int64_t intermediate_padded) {
    return choose_tile(BatchedTileProblem{.capacity = capacity,
                                          .top_k = 8,
                                          .num_experts = experts,
                                          .num_local_experts = experts,
                                          .intermediate_padded = intermediate_padded,
                                          .num_sms = 132,
                                          .wgmma = true,
                                          .shared_memory_optin = 227 * 1024})
        .id;
  };
  EXPECT_EQ(on_hopper(512, 128, 768), TileId::wg64_n256_ws);    // 32 rows per expert: one consumer group
  EXPECT_EQ(on_hopper(1024, 128, 768), TileId::wg128_n256_ws);  // 64: two
  // wg64_n256_ws is taller than 40 rows (48 rounded): the tallest fitting mma.sync tile.
  EXPECT_EQ(on_hopper(40, 8, 4096), TileId::m32);
  // 16 rows in slabs of 16: wg64_n256_ws does not fit, and the heuristic without wgmma gives the streaming
  // tile (not the m16 of the mma.sync chain).
  EXPECT_EQ(on_hopper(16, 8, 4096), TileId::m16_n128_k128);
  EXPECT_EQ(cuda_batched::fitted_tile(TileId::m128, 20).id, TileId::m32);
  EXPECT_EQ(cuda_batched::fitted_tile(TileId::wg128_n256, 100).id, TileId::m64);
  EXPECT_EQ(cuda_batched::fitted_tile(TileId::m128, 113).id, TileId::m128);
  EXPECT_EQ(cuda_batched::fitted_tile(TileId::m16_n32_s8, 1).id, TileId::m16_n32_s8);
  EXPECT_EQ(cuda_batched::padded_rows(33, 16), 48);
}

}  // namespace
}  // namespace fusedmoe
