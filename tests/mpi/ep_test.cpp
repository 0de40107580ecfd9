// Expert parallelism over MPI: run under `mpirun -np N` (CTest does with 2 and 4 ranks). Every test
// compares the expert-parallel result on each rank's own tokens with the single-rank result.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdlib>
#include <numeric>

#include "core/check.hpp"
#include "core/elements.hpp"
#include "parallel/eplb/eplb_policy.hpp"
#include "parallel/eplb/eplb_state.hpp"
#include "parallel/eplb/weight_migration.hpp"
#include "parallel/expert_map.hpp"
#include "parallel/prepare_finalize_ep.hpp"
#include "testing/ep_batched_drops.hpp"
#include "testing/moe_case.hpp"

namespace fusedmoe {
namespace {

std::shared_ptr<Communicator> world() {
  static std::shared_ptr<Communicator> communicator = make_mpi_world_communicator();
  return communicator;
}

// Largest relative error over all ranks (each rank contributes its own).
double max_over_ranks(double value) {
  std::vector<std::int64_t> all(static_cast<std::size_t>(world()->size()));
  world()->all_gather_int64(std::bit_cast<std::int64_t>(value), all);
  double worst = 0.0;
  for (std::int64_t bits : all) worst = std::max(worst, std::bit_cast<double>(bits));
  return worst;
}

enum class Scenario { uniform, zero_token_rank, all_to_one_rank };

struct EpCase {
  DispatchMode mode;
  ExpertPlacement placement;
  DType dtype;
  Scenario scenario;
};

std::string describe(const EpCase& c) {
  const char* scenario = c.scenario == Scenario::uniform           ? "uniform"
                         : c.scenario == Scenario::zero_token_rank ? "zero_token_rank"
                                                                   : "all_to_one_rank";
  return str_cat(to_string(c.mode), "_", to_string(c.placement), "_", to_string(c.dtype), "_", scenario);
}

class ExpertParallel : public ::testing::TestWithParam<EpCase> {};

TEST_P(ExpertParallel, MatchesSingleRank) {
  const EpCase& c = GetParam();
  Communicator& communicator = *world();
  const int ranks = communicator.size(), rank = communicator.rank();
  const std::int64_t experts = 12, total_tokens = 37;
  MoeConfig single = testing::make_config(experts, 3, 48, 40, c.dtype, c.dtype);
  const MoeWeights weights = random_weights(single, 21);  // the same on every rank (same seed)
  const Tensor hidden_all = random_hidden(single, total_tokens, 22);

  // Uneven split of the tokens: rank r gets a share growing with r; zero_token_rank leaves rank 0 empty.
  std::vector<std::int64_t> bounds(static_cast<std::size_t>(ranks + 1), 0);
  for (int r = 1; r <= ranks; ++r) bounds[r] = total_tokens * r * (r + 1) / (ranks * (ranks + 1));
  if (c.scenario == Scenario::zero_token_rank) bounds[1] = 0;
  const std::int64_t begin = bounds[rank], end = bounds[rank + 1], tokens = end - begin;

  // Routing of all tokens; all_to_one_rank sends every token only to experts rank 0 holds.
  testing::Routing routing =
      testing::make_routing(single, total_tokens, testing::RoutingPattern::router, 23, weights, hidden_all);
  if (c.scenario == Scenario::all_to_one_rank) {
    const std::vector<std::int32_t> rank0 = local_experts(experts, ranks, 0, c.placement);
    for (std::int64_t t = 0; t < total_tokens; ++t) {
      for (int slot = 0; slot < 3; ++slot)
        routing.ids.data_as<std::int32_t>()[t * 3 + slot] = rank0[(t + slot) % rank0.size()];
    }
    if (rank0.size() < 3) GTEST_SKIP() << "rank 0 holds fewer experts than top_k";
  }
  const Tensor hidden = Tensor::copy_of(hidden_all.view().slice_rows(begin, end));
  const Tensor ids = Tensor::copy_of(routing.ids.view().slice_rows(begin, end));
  const Tensor topk_weights = Tensor::copy_of(routing.weights.view().slice_rows(begin, end));

  // Single rank: every expert here.
  testing::BuiltKernel whole = testing::build_kernel(*find_backend("cpu_reference"), single, weights);
  const Tensor expected = Tensor::empty(c.dtype, {tokens, single.hidden_size});
  whole.kernel->forward(hidden, ids, topk_weights, {}, *whole.weights, expected);

  // Expert parallel: this rank's experts only.
  MoeConfig parallel = single;
  parallel.parallel = {.ep_size = ranks, .ep_rank = rank, .placement = c.placement, .dispatch = c.mode};
  parallel.validate();
  const std::vector<std::int32_t> mine = local_experts(experts, ranks, rank, c.placement);
  int compared = 0;
  for (const Candidate& candidate : evaluate_backends(parallel, Platform::detect())) {
    if (!candidate.support.ok) continue;
    SCOPED_TRACE(candidate.backend->id);
    const BackendInfo& backend = *candidate.backend;
    const auto converted = backend.convert_weights(gather_experts(weights.w13, mine),
                                                   gather_experts(weights.w2, mine), parallel);
    MoeKernel kernel(parallel, make_prepare_finalize(parallel, world()), backend.make_experts(parallel),
                     {.max_chunk_tokens = 8});
    const Tensor out = Tensor::empty(c.dtype, {tokens, single.hidden_size});
    if (tokens > 0) fill_nan(out);
    const Tensor map = make_expert_map(experts, ranks, rank, c.placement);
    kernel.forward(hidden, ids, topk_weights, map, *converted, out);
    std::vector<double> reference(static_cast<std::size_t>(expected.numel()));
    for (std::int64_t i = 0; i < expected.numel(); ++i)
      reference[i] = load_element(expected.data(), c.dtype, i);
    const double error = tokens > 0 ? compare_to_reference(out, reference).relative_error : 0.0;
    const double worst = max_over_ranks(error);
    EXPECT_LT(worst, c.dtype == DType::fp32 ? 1e-6 : 1e-2) << "this rank's error " << error;
    ++compared;
  }
  EXPECT_GE(compared, 1);
}

std::vector<EpCase> ep_cases() {
  std::vector<EpCase> cases;
  for (DispatchMode mode : {DispatchMode::allgather, DispatchMode::all2all, DispatchMode::all2all_batched}) {
    for (ExpertPlacement placement : {ExpertPlacement::linear, ExpertPlacement::round_robin}) {
      for (DType dtype : {DType::fp32, DType::bf16}) {
        for (Scenario scenario : {Scenario::uniform, Scenario::zero_token_rank, Scenario::all_to_one_rank}) {
          cases.push_back({mode, placement, dtype, scenario});
        }
      }
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Modes, ExpertParallel, ::testing::ValuesIn(ep_cases()),
                         [](const auto& info) { return describe(info.param); });

// all2all_batched with a per-rank capacity smaller than the traffic (batched_capacity 8 tokens per call,
// batched_rank_capacity 4 pairs per destination): the pairs past it in (token, slot) order are dropped, so
// each rank's output is the single-rank output with those pairs' weights set to 0, and every drop is counted.
TEST(ExpertParallelBatched, PairsPastTheRankCapacityAreDroppedAndCounted) {
  Communicator& communicator = *world();
  const int ranks = communicator.size(), rank = communicator.rank();
  const std::int64_t experts = 12, total_tokens = 37, capacity = 8, rank_capacity = 4;
  for (bool all_to_rank0 : {false, true}) {
    SCOPED_TRACE(all_to_rank0 ? "all pairs to rank 0's experts" : "router");
    MoeConfig single = testing::make_config(experts, 3, 48, 40, DType::fp32, DType::fp32);
    const MoeWeights weights = random_weights(single, 24);
    const Tensor hidden_all = random_hidden(single, total_tokens, 25);
    testing::Routing routing =
        testing::make_routing(single, total_tokens, testing::RoutingPattern::router, 26, weights, hidden_all);
    if (all_to_rank0) {
      const std::vector<std::int32_t> rank0 = local_experts(experts, ranks, 0, ExpertPlacement::linear);
      for (std::int64_t t = 0; t < total_tokens; ++t) {
        for (int slot = 0; slot < 3; ++slot)
          routing.ids.data_as<std::int32_t>()[t * 3 + slot] = rank0[(t + slot) % rank0.size()];
      }
    }
    std::vector<std::int64_t> bounds(static_cast<std::size_t>(ranks + 1), 0);
    for (int r = 1; r <= ranks; ++r) bounds[r] = total_tokens * r * (r + 1) / (ranks * (ranks + 1));
    std::int64_t most = 0;
    for (int r = 0; r < ranks; ++r) most = std::max(most, bounds[r + 1] - bounds[r]);
    const std::int64_t begin = bounds[rank], end = bounds[rank + 1], tokens = end - begin;
    const Tensor hidden = Tensor::copy_of(hidden_all.view().slice_rows(begin, end));
    const Tensor ids = Tensor::copy_of(routing.ids.view().slice_rows(begin, end));
    const Tensor topk_weights = Tensor::copy_of(routing.weights.view().slice_rows(begin, end));
    Tensor kept_weights = Tensor::copy_of(topk_weights);
    const std::int64_t expected_drops =
        testing::zero_dropped_pairs(ids, kept_weights, 0, tokens, std::min(most, capacity), rank_capacity,
                                    experts, ranks, ExpertPlacement::linear);

    testing::BuiltKernel whole = testing::build_kernel(*find_backend("cpu_reference"), single, weights);
    const Tensor expected = Tensor::empty(DType::fp32, {tokens, single.hidden_size});
    whole.kernel->forward(hidden, ids, kept_weights, {}, *whole.weights, expected);

    MoeConfig parallel = single;
    parallel.parallel = {.ep_size = ranks,
                         .ep_rank = rank,
                         .dispatch = DispatchMode::all2all_batched,
                         .batched_capacity = capacity,
                         .batched_rank_capacity = rank_capacity};
    parallel.validate();
    const std::vector<std::int32_t> mine = local_experts(experts, ranks, rank, ExpertPlacement::linear);
    const BackendInfo& backend = *find_backend("cpu_reference_batched");
    const auto converted = backend.convert_weights(gather_experts(weights.w13, mine),
                                                   gather_experts(weights.w2, mine), parallel);
    MoeKernel kernel(parallel, make_prepare_finalize(parallel, world()), backend.make_experts(parallel),
                     {.max_chunk_tokens = 0});
    const Tensor out = Tensor::empty(DType::fp32, {tokens, single.hidden_size});
    if (tokens > 0) fill_nan(out);
    kernel.forward(hidden, ids, topk_weights, make_expert_map(experts, ranks, rank, ExpertPlacement::linear),
                   *converted, out);
    std::vector<double> reference(static_cast<std::size_t>(expected.numel()));
    for (std::int64_t i = 0; i < expected.numel(); ++i)
      reference[i] = load_element(expected.data(), DType::fp32, i);
    const double error = tokens > 0 ? compare_to_reference(out, reference).relative_error : 0.0;
    EXPECT_LT(max_over_ranks(error), 1e-6) << "this rank's error " << error;
    const auto& pf = dynamic_cast<const BatchedAllToAllPrepareFinalize&>(kernel.prepare_finalize());
    EXPECT_EQ(pf.rank_capacity(), rank_capacity);
    EXPECT_EQ(pf.dropped_pairs().over_rank_capacity, expected_drops);
    EXPECT_EQ(pf.dropped_pairs().over_slab, 0);
    if (all_to_rank0 && rank == ranks - 1) {
      EXPECT_GT(expected_drops, 0) << "the case must overflow";
    }
  }
}

// One rank's share of a small expert-parallel problem (E 8, k 2, 5 tokens per rank, fp32, linear placement)
// on a CPU reference backend, for the tests where one rank's inputs are bad: its kernel, converted weights,
// inputs (ids (i * stride) % 8, weights 0.5) and the placement's expert map.
struct RankProblem {
  static constexpr std::int64_t kExperts = 8, kTokens = 5;
  RankProblem(DispatchMode mode, int id_stride) {
    const int ranks = world()->size(), rank = world()->rank();
    const MoeConfig single = testing::make_config(kExperts, 2, 32, 16, DType::fp32, DType::fp32);
    const MoeWeights weights = random_weights(single, 3);  // every expert; this rank keeps its own below
    config = single;
    config.parallel = {.ep_size = ranks, .ep_rank = rank, .dispatch = mode, .batched_capacity = 8};
    config.validate();
    const std::vector<std::int32_t> mine = local_experts(kExperts, ranks, rank, ExpertPlacement::linear);
    const BackendInfo& backend =
        *find_backend(mode == DispatchMode::all2all_batched ? "cpu_reference_batched" : "cpu_reference");
    converted =
        backend.convert_weights(gather_experts(weights.w13, mine), gather_experts(weights.w2, mine), config);
    kernel = std::make_unique<MoeKernel>(config, make_prepare_finalize(config, world()),
                                         backend.make_experts(config));
    hidden = random_hidden(config, kTokens, 4);
    ids = Tensor::empty(DType::int32, {kTokens, 2});
    topk_weights = Tensor::empty(DType::fp32, {kTokens, 2});
    for (std::int64_t i = 0; i < kTokens * 2; ++i) {
      ids.data_as<std::int32_t>()[i] = static_cast<std::int32_t>((i * id_stride) % kExperts);
      topk_weights.data_as<float>()[i] = 0.5f;
    }
    map = make_expert_map(kExperts, ranks, rank, ExpertPlacement::linear);
    out = Tensor::empty(DType::fp32, {kTokens, config.hidden_size});
  }
  // Runs a forward that must fail on every rank; `expected` is part of this rank's message.
  void expect_every_rank_fails(const TensorView& rank_ids, const TensorView& rank_map,
                               const std::string& expected) {
    try {
      kernel->forward(hidden, rank_ids, topk_weights, rank_map, *converted, out);
      FAIL() << "rank " << world()->rank() << " went on although another rank's inputs were bad";
    } catch (const InvalidArgument& error) {
      EXPECT_NE(std::string(error.what()).find(expected), std::string::npos) << error.what();
    }
    kernel->forward(hidden, ids, topk_weights, map, *converted, out);  // every rank goes on together
  }

  MoeConfig config;
  std::shared_ptr<const ExpertWeights> converted;
  std::unique_ptr<MoeKernel> kernel;
  Tensor hidden, ids, topk_weights, map, out;
};

// Bad routing on one rank (an id out of range; for the batched slabs also a token listing an expert twice)
// fails every rank at the same collective, with a message on the guilty rank saying what is wrong: no rank
// is left waiting. The kernel keeps working afterwards (every rank stopped at the same point).
TEST(ExpertParallelErrors, BadRoutingOnOneRankFailsEveryRank) {
  const bool guilty = world()->rank() == world()->size() - 1;
  for (DispatchMode mode : {DispatchMode::all2all, DispatchMode::all2all_batched}) {
    for (bool duplicate : {false, true}) {
      if (duplicate && mode != DispatchMode::all2all_batched) continue;  // the standard format takes them
      SCOPED_TRACE(str_cat(to_string(mode), duplicate ? " duplicate id" : " id out of range"));
      RankProblem problem(mode, 1);
      Tensor bad_ids = Tensor::copy_of(problem.ids);
      if (guilty) bad_ids.data_as<std::int32_t>()[3] = duplicate ? bad_ids.data_as<std::int32_t>()[2] : 99;
      problem.expect_every_rank_fails(bad_ids, problem.map,
                                      !guilty     ? "rejected its"
                                      : duplicate ? "twice"
                                                  : "= 99");
    }
  }
}

// The expert map in expert-parallel mode: left out, or not the placement's, on one rank. That rank says why
// (a missing map would have let global ids index its local weights; a different one would lose pairs, since
// the dispatch routes by the placement) and every rank stops at the same point, then goes on together.
TEST(ExpertParallelErrors, MissingOrWrongExpertMapOnOneRankFailsEveryRank) {
  const int ranks = world()->size(), rank = world()->rank();
  const bool guilty = rank == ranks - 1;
  for (DispatchMode mode : {DispatchMode::allgather, DispatchMode::all2all}) {
    for (bool missing : {true, false}) {
      SCOPED_TRACE(str_cat(to_string(mode), missing ? " map missing" : " map not the placement's"));
      RankProblem problem(mode, 3);
      // Round-robin's map: valid ids, but not where the (linear) dispatch sends the pairs.
      const Tensor wrong_map =
          make_expert_map(RankProblem::kExperts, ranks, rank, ExpertPlacement::round_robin);
      const TensorView given = !guilty ? problem.map.view() : missing ? TensorView{} : wrong_map.view();
      problem.expect_every_rank_fails(problem.ids, given,
                                      !guilty   ? "rejected its"
                                      : missing ? "needs expert_map"
                                                : "placement holds it");
    }
  }
}

// The variable-size exchanges in several pieces (MPI's counts are int, so larger messages go in pieces of
// 1 MiB): all_to_allv with a different, odd byte count per (sender, receiver), and send_receive_bytes
// around the ring; every byte lands where it should.
TEST(ExpertParallelCommunicator, LargeVariableExchangesArriveWhole) {
  Communicator& communicator = *world();
  const int ranks = communicator.size(), rank = communicator.rank();
  const auto bytes_between = [](int from, int to) {
    return static_cast<std::size_t>((1 << 20) * (1 + (from + 2 * to) % 3) + 17 * from + 5 * to + 3);
  };
  const auto byte_at = [](int from, int to, std::size_t i) {
    return static_cast<std::uint8_t>((i * 131 + static_cast<std::size_t>(from) * 7 + to) & 0xff);
  };
  std::vector<std::size_t> send_bytes(ranks), receive_bytes(ranks);
  for (int r = 0; r < ranks; ++r) {
    send_bytes[r] = bytes_between(rank, r);
    receive_bytes[r] = bytes_between(r, rank);
  }
  std::vector<std::uint8_t> send(std::accumulate(send_bytes.begin(), send_bytes.end(), std::size_t{0}));
  std::vector<std::uint8_t> receive(
      std::accumulate(receive_bytes.begin(), receive_bytes.end(), std::size_t{0}), 0xee);
  for (std::size_t offset = 0, r = 0; r < send_bytes.size(); offset += send_bytes[r++]) {
    for (std::size_t i = 0; i < send_bytes[r]; ++i) send[offset + i] = byte_at(rank, static_cast<int>(r), i);
  }
  communicator.all_to_allv(send.data(), send_bytes, receive.data(), receive_bytes, nullptr);
  std::int64_t wrong = 0;
  for (std::size_t offset = 0, r = 0; r < receive_bytes.size(); offset += receive_bytes[r++]) {
    for (std::size_t i = 0; i < receive_bytes[r]; ++i) {
      wrong += receive[offset + i] != byte_at(static_cast<int>(r), rank, i) ? 1 : 0;
    }
  }
  EXPECT_EQ(wrong, 0) << "all_to_allv on rank " << rank;

  const int next = (rank + 1) % ranks, previous = (rank + ranks - 1) % ranks;
  std::vector<std::uint8_t> out(bytes_between(rank, next)), in(bytes_between(previous, rank), 0xee);
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = byte_at(rank, next, i);
  communicator.send_receive_bytes(out.data(), out.size(), next, in.data(), in.size(), previous, 9);
  wrong = 0;
  for (std::size_t i = 0; i < in.size(); ++i) wrong += in[i] != byte_at(previous, rank, i) ? 1 : 0;
  EXPECT_EQ(wrong, 0) << "send_receive_bytes on rank " << rank;

  // A count list of the wrong length is refused on every rank (they all pass the same length).
  EXPECT_THROW(communicator.all_to_allv(send.data(), std::span(send_bytes).first(ranks - 1), receive.data(),
                                        receive_bytes, nullptr),
               InvalidArgument);
}

TEST(ExpertParallelHandshake, MismatchedConfigsFailOnEveryRank) {
  Communicator& communicator = *world();
  const MoeConfig single =
      testing::make_config(8, 2, 32, 16 + (communicator.rank() == communicator.size() - 1 ? 8 : 0));
  MoeConfig config = single;
  config.parallel = {
      .ep_size = communicator.size(), .ep_rank = communicator.rank(), .dispatch = DispatchMode::all2all};
  LayerOptions options;
  options.communicator = world();
  FusedMoeLayer layer(config, options);
  const MoeWeights full = random_weights(single, 1);  // all experts, then this rank's share
  const std::vector<std::int32_t> mine = layer.local_expert_ids();
  MoeWeights weights;
  weights.router_gate = full.router_gate;
  weights.w13 = gather_experts(full.w13, mine);
  weights.w2 = gather_experts(full.w2, mine);
  layer.set_weights(weights);
  try {
    layer.finalize_weights();
    FAIL() << "rank " << communicator.rank() << " accepted a configuration the last rank does not share";
  } catch (const InvalidArgument& error) {
    EXPECT_NE(std::string(error.what()).find("ranks disagree"), std::string::npos) << error.what();
  }
}

// A rank that cannot take part in NCCL's set-up (here rank 1: cuda:1000 does not exist; on a machine without
// GPUs no rank can) fails it on every rank, each naming that rank's reason. Before, the other ranks waited
// in ncclCommInitRank for it.
TEST(ExpertParallelHandshake, NcclSetUpFailsEveryRankWhereOneCannotTakePart) {
  if (!nccl_available()) GTEST_SKIP() << "this build has no NCCL";
  Communicator& communicator = *world();
  try {
    (void)make_nccl_communicator(communicator, communicator.rank() == 1 ? 1000 : 0);
    FAIL() << "rank " << communicator.rank() << " set up NCCL without rank 1";
  } catch (const CommError& error) {
    EXPECT_NE(std::string(error.what()).find("rank 1: [nccl] make_nccl_communicator"), std::string::npos)
        << error.what();
  }
}

TEST(ExpertParallelLayer, LayerWithCommunicatorMatchesSingleRank) {
  Communicator& communicator = *world();
  MoeConfig config = testing::make_config(8, 2, 32, 16, DType::fp32, DType::fp32);
  config.shared = {.count = 1, .intermediate_size = 24, .sigmoid_gate = true};
  const MoeWeights full = random_weights(config, 5);
  const std::int64_t tokens = 3 + communicator.rank();  // uneven
  const Tensor hidden = random_hidden(config, tokens, 6 + communicator.rank());
  FusedMoeLayer reference(config);
  reference.set_weights(full);
  reference.finalize_weights();
  const Tensor expected = Tensor::empty(DType::fp32, {tokens, 32});
  reference.forward(hidden, expected);

  MoeConfig parallel = config;
  parallel.parallel = {
      .ep_size = communicator.size(), .ep_rank = communicator.rank(), .dispatch = DispatchMode::allgather};
  LayerOptions options;
  options.communicator = world();
  FusedMoeLayer layer(parallel, options);
  MoeWeights weights = full;
  weights.w13 = gather_experts(full.w13, layer.local_expert_ids());
  weights.w2 = gather_experts(full.w2, layer.local_expert_ids());
  layer.set_weights(weights);
  layer.finalize_weights();
  const Tensor out = Tensor::empty(DType::fp32, {tokens, 32});
  layer.forward(hidden, out);
  std::vector<double> values(expected.data_as<float>(), expected.data_as<float>() + expected.numel());
  EXPECT_LT(max_over_ranks(compare_to_reference(out, values).relative_error), 1e-6);

  // The layer's own checks fail every rank together: the last rank passes `out` in the wrong dtype and
  // says so; the others stop in the token agreement instead of waiting for it. Then all go on.
  const bool guilty = communicator.rank() == communicator.size() - 1;
  const Tensor wrong_out = Tensor::empty(DType::bf16, {tokens, 32});
  try {
    layer.forward(hidden, guilty ? wrong_out : out);
    FAIL() << "rank " << communicator.rank() << " went on although the last rank's out was bf16";
  } catch (const InvalidArgument& error) {
    EXPECT_NE(std::string(error.what()).find(guilty ? "out" : "rejected its"), std::string::npos)
        << error.what();
  }
  // The same for a check before the router (hidden of the wrong width, through forward(hidden, out)).
  const Tensor narrow = Tensor::empty(DType::fp32, {tokens, 16});
  try {
    layer.forward(guilty ? narrow : hidden, out);
    FAIL() << "rank " << communicator.rank() << " went on although the last rank's hidden was [M, 16]";
  } catch (const InvalidArgument& error) {
    EXPECT_NE(std::string(error.what()).find(guilty ? "hidden shape" : "rejected its"), std::string::npos)
        << error.what();
  }
  layer.forward(hidden, out);
  EXPECT_LT(max_over_ranks(compare_to_reference(out, values).relative_error), 1e-6);
}

// EPLB end to end: physical replicas, a rebalance on skewed load, weights migrated between ranks.
TEST(ExpertParallelEplb, RebalanceAndMigrationKeepTheOutput) {
  Communicator& communicator = *world();
  const int ranks = communicator.size(), rank = communicator.rank();
  const int logical = 8, physical = 12, slots = physical / ranks;
  if (physical % ranks != 0)
    GTEST_SKIP() << physical << " physical experts do not split over " << ranks << " ranks";
  MoeConfig logical_config = testing::make_config(logical, 2, 32, 24, DType::fp32, DType::fp32);
  const MoeWeights weights = random_weights(logical_config, 9);
  EplbState state(EplbConfig{.num_layers = 1,
                             .num_logical_experts = logical,
                             .num_physical_experts = physical,
                             .num_groups = 1,
                             .num_nodes = 1,
                             .num_ranks = ranks});
  const std::int64_t tokens = 29;
  const Tensor hidden = random_hidden(logical_config, tokens, 10 + rank);
  // Skewed routing: expert 0 in every token.
  testing::Routing routing = testing::make_routing(
      logical_config, tokens, testing::RoutingPattern::one_hot_expert, 11 + rank, weights, hidden);

  MoeConfig config = logical_config;  // the kernel sees physical experts
  config.num_experts = physical;
  config.parallel = {.ep_size = ranks, .ep_rank = rank, .dispatch = DispatchMode::all2all};
  auto run = [&](const Tensor& w13, const Tensor& w2) {
    std::vector<std::int32_t> physical_ids(static_cast<std::size_t>(tokens * 2));
    state.map_to_physical(0, {routing.ids.data_as<std::int32_t>(), physical_ids.size()}, physical_ids);
    state.record(0, physical_ids);
    const Tensor ids = Tensor::empty(DType::int32, {tokens, 2});
    std::copy(physical_ids.begin(), physical_ids.end(), ids.data_as<std::int32_t>());
    const BackendInfo& backend = *find_backend("cpu_reference");
    const auto converted = backend.convert_weights(w13, w2, config);
    MoeKernel kernel(config, make_prepare_finalize(config, world()), backend.make_experts(config));
    const Tensor out = Tensor::empty(DType::fp32, {tokens, 32});
    fill_nan(out);
    kernel.forward(hidden, ids, routing.weights,
                   make_expert_map(physical, ranks, rank, ExpertPlacement::linear), *converted, out);
    return out;
  };
  auto local_stack = [&](const Tensor& logical_stack, const std::vector<std::int32_t>& physical_to_logical) {
    std::vector<std::int32_t> mine(physical_to_logical.begin() + rank * slots,
                                   physical_to_logical.begin() + (rank + 1) * slots);
    return gather_experts(logical_stack, mine);
  };
  const std::vector<std::int32_t> before = state.placement(0).physical_to_logical;
  const Tensor w13 = local_stack(weights.w13, before), w2 = local_stack(weights.w2, before);
  const Tensor first = run(w13, w2);
  // The physical replicas give the logical MoE's output (the fp64 reference of the logical experts).
  EXPECT_LT(max_over_ranks(compare_to_reference(first, fp64_moe_reference(logical_config, weights, hidden,
                                                                          routing.ids, routing.weights))
                               .relative_error),
            tolerance_for(DType::fp32));

  // Every rank records the same skewed load (counters are per rank; sum them so the policy agrees).
  const std::vector<std::int64_t> load = state.physical_load(0);
  state.reset_load();
  for (int p = 0; p < physical; ++p) {
    std::vector<std::int64_t> all(static_cast<std::size_t>(ranks));
    communicator.all_gather_int64(load[p], all);
    std::vector<std::int32_t> replay(
        static_cast<std::size_t>(std::accumulate(all.begin(), all.end(), std::int64_t{0})), p);
    state.record(0, replay);
  }
  state.rebalance();
  const std::vector<std::int32_t> after = state.placement(0).physical_to_logical;
  EXPECT_NE(before, after) << "a skewed load should move something";
  const Tensor moved13 = migrate_expert_weights(communicator, before, after, w13);
  const Tensor moved2 = migrate_expert_weights(communicator, before, after, w2);
  EXPECT_TRUE(testing::bitwise_equal(moved13, local_stack(weights.w13, after))) << "w13 after migration";
  EXPECT_TRUE(testing::bitwise_equal(moved2, local_stack(weights.w2, after))) << "w2 after migration";
  const Tensor second = run(moved13, moved2);
  std::vector<double> values(first.data_as<float>(), first.data_as<float>() + first.numel());
  EXPECT_LT(max_over_ranks(compare_to_reference(second, values).relative_error), 1e-6);

  // A new placement naming a logical expert that the old one does not hold (here on the last rank's last
  // slot) fails on every rank before any exchange, not only on the rank that would have received it.
  std::vector<std::int32_t> bad = after;
  bad.back() = static_cast<std::int32_t>(physical + 5);
  try {
    (void)migrate_expert_weights(communicator, before, bad, w13);
    FAIL() << "rank " << rank << " migrated to a placement with an unknown logical expert";
  } catch (const InvalidArgument& error) {
    EXPECT_NE(std::string(error.what()).find("no rank holds in the old placement"), std::string::npos)
        << error.what();
  }
  communicator.barrier();  // every rank got here
}

}  // namespace
}  // namespace fusedmoe

// MPI-aware main: only rank 0 prints gtest's report; every rank's failures reach the exit status.
int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  auto communicator = fusedmoe::world();
  if (communicator->rank() != 0 && std::getenv("FUSEDMOE_MPI_TEST_ALL_RANKS") == nullptr) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int status = RUN_ALL_TESTS();
  std::vector<std::int64_t> statuses(static_cast<std::size_t>(communicator->size()));
  communicator->all_gather_int64(status, statuses);
  for (std::int64_t s : statuses) {
    if (s != 0) return 1;
  }
  return 0;
}
