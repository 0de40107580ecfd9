// Expert parallelism over NCCL on 2 GPUs of this process, one thread per rank: every dispatch mode and
// placement, uneven, empty and skewed token shares, against the single-device output, with the CPU reference
// Experts behind the device dispatch and with the CUDA Experts of the format (cuda_fused, cuda_batched);
// all2all_batched past its per-rank capacity (drops as documented and counted) and the whole all2all_batched
// layer captured in a CUDA graph and replayed (== eager). Skips without 2 GPUs or NCCL, or when the CUDA
// backend refuses the case, with its reason.
#include "cuda/ep_batched_case.hpp"
#include "cuda/ep_device_case.hpp"

namespace fusedmoe {
namespace {

using testing::EpCase;

class NcclExpertParallel : public ::testing::TestWithParam<EpCase> {};

TEST_P(NcclExpertParallel, MatchesOneDevice) {
  FUSEDMOE_REQUIRE_NCCL_GPUS(2);
  const testing::EpProblem problem = testing::make_ep_problem(GetParam(), 2);
  if (const std::string reason = testing::ep_skip_reason(problem, Device::cuda(0)); !reason.empty()) {
    GTEST_SKIP() << reason;
  }
  const Tensor expected = testing::single_device_output(problem, Device::cuda(0));
  const std::vector<int> devices = {0, 1};
  std::vector<double> errors(2, -1.0);
  testing::run_ranks(make_nccl_communicators_single_process(devices), devices,
                     [&](int rank, const std::shared_ptr<Communicator>& communicator) {
                       errors[rank] =
                           testing::run_ep_rank(problem, communicator, rank, devices[rank], expected);
                     });
  for (int rank = 0; rank < 2; ++rank) {
    EXPECT_GE(errors[rank], 0.0) << "rank " << rank << " did not finish";
    EXPECT_LT(errors[rank], testing::ep_tolerance(GetParam().dtype)) << "rank " << rank;
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, NcclExpertParallel, ::testing::ValuesIn(testing::ep_device_cases()),
                         [](const auto& info) { return testing::describe(info.param); });

// The whole layer (router, expert map, start-up handshake) with a NCCL communicator on cuda:0 and cuda:1
// against the same layer on cuda:0 alone.
TEST(NcclLayer, TwoGpuLayerMatchesOneGpuLayer) {
  FUSEDMOE_REQUIRE_NCCL_GPUS(2);
  MoeConfig config = testing::make_config(8, 2, 64, 48);
  config.device = Device::cuda(0);
  for (DispatchMode mode : {DispatchMode::allgather, DispatchMode::all2all, DispatchMode::all2all_batched}) {
    SCOPED_TRACE(to_string(mode));
    MoeConfig parallel = config;
    parallel.parallel = {.ep_size = 2, .ep_rank = 0, .dispatch = mode};
    const BackendInfo& backend =
        *find_backend(mode == DispatchMode::all2all_batched ? "cuda_batched" : "cuda_fused");
    const Support support =
        backend.supports(parallel, Platform::detect(parallel.device), dispatch_format(parallel));
    if (!support.ok) GTEST_SKIP() << backend.id << ": " << support.reason;
    const MoeWeights full = random_weights(config, 41);
    const std::int64_t tokens[2] = {5, 14};
    const Tensor hidden = random_hidden(config, tokens[0] + tokens[1], 42);
    FusedMoeLayer single(config);
    single.set_weights(testing::weights_on(full, config.device));
    single.finalize_weights();
    const Tensor expected_device =
        testing::empty_poisoned(config.act_dtype, {hidden.size(0), 64}, config.device);
    single.forward(testing::to_device(hidden, config.device), expected_device);
    const Tensor expected = testing::to_host(expected_device);

    const std::vector<int> devices = {0, 1};
    std::vector<double> errors(2, -1.0);
    testing::run_ranks(
        make_nccl_communicators_single_process(devices), devices,
        [&](int rank, const std::shared_ptr<Communicator>& communicator) {
          MoeConfig mine = parallel;
          mine.parallel.ep_rank = rank;
          mine.device = Device::cuda(devices[rank]);
          LayerOptions options;
          options.communicator = communicator;
          FusedMoeLayer layer(mine, options);
          MoeWeights weights = full;
          weights.w13 = gather_experts(full.w13, layer.local_expert_ids());
          weights.w2 = gather_experts(full.w2, layer.local_expert_ids());
          layer.set_weights(testing::weights_on(weights, mine.device));
          layer.finalize_weights();
          const std::int64_t begin = rank == 0 ? 0 : tokens[0], count = tokens[rank];
          const Tensor out = testing::empty_poisoned(mine.act_dtype, {count, 64}, mine.device);
          layer.forward(testing::to_device(Tensor::copy_of(hidden.view().slice_rows(begin, begin + count)),
                                           mine.device),
                        out);
          const Tensor result = testing::to_host(out);
          std::vector<double> reference(static_cast<std::size_t>(count * 64));
          for (std::size_t i = 0; i < reference.size(); ++i)
            reference[i] =
                load_element(expected.data(), expected.dtype(), begin * 64 + static_cast<std::int64_t>(i));
          errors[rank] = compare_to_reference(result, reference).relative_error;
        });
    for (int rank = 0; rank < 2; ++rank) {
      EXPECT_GE(errors[rank], 0.0) << "rank " << rank << " did not finish";
      EXPECT_LT(errors[rank], 1e-2) << "rank " << rank;
    }
  }
}

// all2all_batched with at most 4 pairs from one rank to another per call: each rank's output is the
// single-device output with the dropped pairs' weights set to 0, and each rank counts exactly its drops.
class NcclBatchedOverflow : public ::testing::TestWithParam<std::tuple<testing::Scenario, DType>> {};

TEST_P(NcclBatchedOverflow, DropsThePairsPastTheRankCapacityAndCountsThem) {
  FUSEDMOE_REQUIRE_NCCL_GPUS(2);
  const auto [scenario, dtype] = GetParam();
  const testing::EpProblem problem =
      testing::make_ep_problem({DispatchMode::all2all_batched, ExpertPlacement::linear, dtype, scenario,
                                testing::ExpertsUnderTest::host_reference},
                               2);
  const testing::OverflowExpectation expectation = testing::overflow_expectation(problem);
  if (scenario == testing::Scenario::all_to_one_rank) {
    ASSERT_GT(expectation.drops[1], 0) << "the case must overflow";
  }
  const std::vector<int> devices = {0, 1};
  std::vector<testing::OverflowRun> runs(2);
  testing::run_ranks(make_nccl_communicators_single_process(devices), devices,
                     [&](int rank, const std::shared_ptr<Communicator>& communicator) {
                       runs[rank] = testing::run_overflow_rank(problem, communicator, rank, devices[rank],
                                                               expectation.expected);
                     });
  for (int rank = 0; rank < 2; ++rank) {
    EXPECT_GE(runs[rank].error, 0.0) << "rank " << rank << " did not finish";
    EXPECT_LT(runs[rank].error, testing::ep_tolerance(dtype)) << "rank " << rank;
    EXPECT_EQ(runs[rank].dropped.over_rank_capacity, expectation.drops[rank]) << "rank " << rank;
    EXPECT_EQ(runs[rank].dropped.over_slab, 0) << "rank " << rank;
  }
}

std::string overflow_name(const ::testing::TestParamInfo<std::tuple<testing::Scenario, DType>>& info) {
  const testing::EpCase c{DispatchMode::all2all_batched, ExpertPlacement::linear, std::get<1>(info.param),
                          std::get<0>(info.param), testing::ExpertsUnderTest::host_reference};
  return testing::describe(c);
}

INSTANTIATE_TEST_SUITE_P(
    Scenarios, NcclBatchedOverflow,
    ::testing::Combine(::testing::Values(testing::Scenario::uniform, testing::Scenario::zero_token_rank,
                                         testing::Scenario::all_to_one_rank, testing::Scenario::skewed),
                       ::testing::Values(DType::fp32, DType::bf16)),
    overflow_name);

// The whole all2all_batched layer (router, dispatch, cuda_batched, combine) on cuda:0 and cuda:1, captured
// in one CUDA graph per rank (thread-local capture: the other rank's thread keeps running) and replayed
// twice: bitwise equal to its eager forward, which matches the single-GPU layer. Token shares per rank:
// uneven, one rank empty, both full (batched_capacity = 16).
class NcclBatchedGraph : public ::testing::TestWithParam<std::pair<std::int64_t, std::int64_t>> {};

TEST_P(NcclBatchedGraph, WholeLayerCapturesAndReplaysLikeEager) {
  FUSEDMOE_REQUIRE_NCCL_GPUS(2);
  if (const std::string reason = testing::cuda_batched_skip_reason(testing::graph_layer_config(0, 0));
      !reason.empty()) {
    GTEST_SKIP() << reason;
  }
  const auto [first, second] = GetParam();
  const MoeConfig base = testing::make_config(8, 2, 64, 48);
  const MoeWeights full = random_weights(base, 41);
  const Tensor hidden = random_hidden(base, first + second, 42);
  const Tensor expected = testing::single_gpu_layer_output(full, hidden, 0);
  const std::vector<int> devices = {0, 1};
  std::vector<testing::GraphRun> runs(2);
  testing::run_ranks(make_nccl_communicators_single_process(devices), devices,
                     [&](int rank, const std::shared_ptr<Communicator>& communicator) {
                       runs[rank] = testing::run_layer_graph_rank(
                           full, hidden, rank == 0 ? 0 : first, rank == 0 ? first : second, communicator,
                           rank, devices[rank], expected, cudaStreamCaptureModeThreadLocal);
                     });
  for (int rank = 0; rank < 2; ++rank) {
    EXPECT_GE(runs[rank].error, 0.0) << "rank " << rank << " did not finish";
    EXPECT_LT(runs[rank].error, 1e-2) << "rank " << rank;
    EXPECT_EQ(runs[rank].equal_replays, runs[rank].replays) << "rank " << rank;
  }
}

INSTANTIATE_TEST_SUITE_P(TokenShares, NcclBatchedGraph,
                         ::testing::Values(std::pair<std::int64_t, std::int64_t>{5, 14},
                                           std::pair<std::int64_t, std::int64_t>{0, 9},
                                           std::pair<std::int64_t, std::int64_t>{16, 16}),
                         [](const auto& info) {
                           return str_cat(info.param.first, "_and_", info.param.second, "_tokens");
                         });

}  // namespace
}  // namespace fusedmoe
