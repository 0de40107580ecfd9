// Expert parallelism over NCCL on 2 GPUs of this process, one thread per rank: every dispatch mode and
// placement, uneven, empty and skewed token shares, against the single-device output, with the CPU reference
// Experts behind the device dispatch and with the CUDA Experts of the format (cuda_fused, cuda_batched).
// Skips without 2 GPUs or NCCL, or when the CUDA backend refuses the case, with its reason.
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
    const Tensor expected_device = Tensor::empty(config.act_dtype, {hidden.size(0), 64}, config.device);
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
          const Tensor out = Tensor::empty(mine.act_dtype, {count, 64}, mine.device);
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

}  // namespace
}  // namespace fusedmoe
