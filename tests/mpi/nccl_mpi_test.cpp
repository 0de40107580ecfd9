// Expert parallelism over NCCL with one process per GPU: run under `mpirun -np 2` (CTest does, labelled mpi
// and gpu). The NCCL communicator is made from the MPI one (rank 0's unique id broadcast over MPI); each rank
// drives the GPU of its local rank. Exits 77 (CTest: skipped) when NCCL or one GPU per rank is missing.
#include <gtest/gtest.h>

#include <bit>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "cuda/ep_batched_case.hpp"
#include "cuda/ep_device_case.hpp"

namespace fusedmoe {
namespace {

std::shared_ptr<Communicator>& world() {
  static std::shared_ptr<Communicator> communicator;
  return communicator;
}
std::shared_ptr<Communicator>& nccl() {
  static std::shared_ptr<Communicator> communicator;
  return communicator;
}
int& device_index() {
  static int index = 0;
  return index;
}

// The rank among the processes of this node (Open MPI, MPICH, Slurm), else the world rank.
int local_rank(int world_rank) {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"}) {
    if (const char* value = std::getenv(name)) return std::atoi(value);
  }
  return world_rank;
}

double max_over_ranks(double value) {
  std::vector<std::int64_t> all(static_cast<std::size_t>(world()->size()));
  world()->all_gather_int64(std::bit_cast<std::int64_t>(value), all);
  double worst = 0.0;
  for (std::int64_t bits : all) worst = std::max(worst, std::bit_cast<double>(bits));
  return worst;
}

TEST(MpiNccl, CommunicatorFromMpiMovesDeviceBuffers) {
  Communicator& communicator = *nccl();
  const int rank = communicator.rank(), ranks = communicator.size();
  EXPECT_EQ(communicator.name(), "nccl");
  EXPECT_EQ(rank, world()->rank());
  std::vector<std::int64_t> all(static_cast<std::size_t>(ranks));
  communicator.all_gather_int64(rank * 3, all);
  for (int r = 0; r < ranks; ++r) EXPECT_EQ(all[r], r * 3);
  // all_to_allv: rank r sends (r + 1) * (to + 1) int32 values of r * 100 + to to rank `to` (rank 0 sends
  // nothing to the last rank: an empty message).
  auto count = [&](int from, int to) -> std::size_t {
    return from == 0 && to == ranks - 1 ? 0 : static_cast<std::size_t>((from + 1) * (to + 1));
  };
  std::vector<std::int32_t> out;
  std::vector<std::size_t> send_bytes, receive_bytes;
  std::size_t received = 0;
  for (int r = 0; r < ranks; ++r) {
    out.insert(out.end(), count(rank, r), rank * 100 + r);
    send_bytes.push_back(count(rank, r) * 4);
    receive_bytes.push_back(count(r, rank) * 4);
    received += count(r, rank);
  }
  const Device device = Device::cuda(device_index());
  Tensor host_out = Tensor::empty(DType::int32, {static_cast<std::int64_t>(out.size())});
  std::copy(out.begin(), out.end(), host_out.data_as<std::int32_t>());
  const Tensor send = testing::to_device(host_out, device);
  const Tensor receive = Tensor::empty(DType::int32, {static_cast<std::int64_t>(received)}, device);
  testing::TestStream stream;
  communicator.all_to_allv(send.data(), send_bytes, receive.data(), receive_bytes, stream.get());
  stream.synchronize();
  const Tensor result = testing::to_host(receive);
  std::size_t at = 0;
  for (int r = 0; r < ranks; ++r) {
    for (std::size_t i = 0; i < count(r, rank); ++i, ++at)
      EXPECT_EQ(result.data_as<const std::int32_t>()[at], r * 100 + rank) << "from rank " << r;
  }
  communicator.barrier();
}

class MpiNcclExpertParallel : public ::testing::TestWithParam<testing::EpCase> {};

TEST_P(MpiNcclExpertParallel, MatchesOneDevice) {
  const int ranks = nccl()->size(), rank = nccl()->rank();
  const testing::EpProblem problem = testing::make_ep_problem(GetParam(), ranks);
  const Device device = Device::cuda(device_index());
  // Every rank has the same GPUs, so every rank skips (or runs) alike.
  if (const std::string reason = testing::ep_skip_reason(problem, device); !reason.empty())
    GTEST_SKIP() << reason;
  const Tensor expected = testing::single_device_output(problem, device);
  const double error = testing::run_ep_rank(problem, nccl(), rank, device_index(), expected);
  const double worst = max_over_ranks(error);
  EXPECT_LT(worst, testing::ep_tolerance(GetParam().dtype)) << "this rank's error " << error;
}

INSTANTIATE_TEST_SUITE_P(Modes, MpiNcclExpertParallel, ::testing::ValuesIn(testing::ep_device_cases()),
                         [](const auto& info) { return testing::describe(info.param); });

// all2all_batched past its per-rank capacity, one process per GPU (see tests/cuda/nccl_ep_test.cpp).
class MpiNcclBatchedOverflow : public ::testing::TestWithParam<testing::Scenario> {};

TEST_P(MpiNcclBatchedOverflow, DropsThePairsPastTheRankCapacityAndCountsThem) {
  const int ranks = nccl()->size(), rank = nccl()->rank();
  const testing::EpProblem problem =
      testing::make_ep_problem({DispatchMode::all2all_batched, ExpertPlacement::linear, DType::bf16,
                                GetParam(), testing::ExpertsUnderTest::host_reference},
                               ranks);
  const testing::OverflowExpectation expectation = testing::overflow_expectation(problem);
  const testing::OverflowRun run =
      testing::run_overflow_rank(problem, nccl(), rank, device_index(), expectation.expected);
  const double worst = max_over_ranks(run.error);
  EXPECT_LT(worst, testing::ep_tolerance(DType::bf16)) << "this rank's error " << run.error;
  EXPECT_EQ(run.dropped.over_rank_capacity, expectation.drops[rank]);
  EXPECT_EQ(run.dropped.over_slab, 0);
}

std::string overflow_name(const ::testing::TestParamInfo<testing::Scenario>& info) {
  const testing::EpCase c{DispatchMode::all2all_batched, ExpertPlacement::linear, DType::bf16, info.param,
                          testing::ExpertsUnderTest::host_reference};
  return testing::describe(c);
}

INSTANTIATE_TEST_SUITE_P(Scenarios, MpiNcclBatchedOverflow,
                         ::testing::Values(testing::Scenario::uniform, testing::Scenario::zero_token_rank,
                                           testing::Scenario::all_to_one_rank, testing::Scenario::skewed),
                         overflow_name);

// The whole all2all_batched layer captured in a CUDA graph (global capture mode: one process per GPU) and
// replayed twice, bitwise equal to eager; eager matches the single-GPU layer. 2 ranks.
class MpiNcclBatchedGraph : public ::testing::TestWithParam<std::pair<std::int64_t, std::int64_t>> {};

TEST_P(MpiNcclBatchedGraph, WholeLayerCapturesAndReplaysLikeEager) {
  const int ranks = nccl()->size(), rank = nccl()->rank();
  if (ranks != 2) GTEST_SKIP() << "the graph case is written for 2 ranks, this run has " << ranks;
  // Every rank has the same GPUs and build, so every rank skips (or runs) alike.
  if (const std::string reason =
          testing::cuda_batched_skip_reason(testing::graph_layer_config(rank, device_index()));
      !reason.empty()) {
    GTEST_SKIP() << reason;
  }
  const auto [first, second] = GetParam();
  const MoeConfig base = testing::make_config(8, 2, 64, 48);
  const MoeWeights full = random_weights(base, 41);
  const Tensor hidden = random_hidden(base, first + second, 42);
  const Tensor expected = testing::single_gpu_layer_output(full, hidden, device_index());
  const testing::GraphRun run =
      testing::run_layer_graph_rank(full, hidden, rank == 0 ? 0 : first, rank == 0 ? first : second, nccl(),
                                    rank, device_index(), expected, cudaStreamCaptureModeGlobal);
  EXPECT_LT(max_over_ranks(run.error), 1e-2) << "this rank's error " << run.error;
  EXPECT_EQ(run.equal_replays, run.replays);
}

INSTANTIATE_TEST_SUITE_P(TokenShares, MpiNcclBatchedGraph,
                         ::testing::Values(std::pair<std::int64_t, std::int64_t>{5, 14},
                                           std::pair<std::int64_t, std::int64_t>{0, 9}),
                         [](const auto& info) {
                           return str_cat(info.param.first, "_and_", info.param.second, "_tokens");
                         });

}  // namespace
}  // namespace fusedmoe

int main(int argc, char** argv) {
  using namespace fusedmoe;
  // `--require-gpus N`: exit 0 when NCCL and N GPUs are usable, else 77 with the reason (no MPI involved);
  // CTest's CLI entries run it first.
  if (argc == 3 && std::strcmp(argv[1], "--require-gpus") == 0) {
    const std::string reason = fusedmoe::testing::nccl_unavailable_reason(std::atoi(argv[2]));
    if (reason.empty()) return 0;
    std::cout << "skipped: " << reason << "\n";
    return 77;
  }
  ::testing::InitGoogleTest(&argc, argv);
  world() = make_mpi_world_communicator();
  const int rank = world()->rank(), ranks = world()->size();
  // Every rank decides alike (same machine), so all skip together.
  const std::string reason = fusedmoe::testing::nccl_unavailable_reason(ranks);
  if (!reason.empty()) {
    if (rank == 0) std::cout << "skipped: " << reason << " (one GPU per rank)\n";
    world().reset();
    return 77;
  }
  device_index() = local_rank(rank);
  nccl() = make_nccl_communicator(*world(), device_index());  // makes the rank's GPU current
  int current = -1;
  if (cudaGetDevice(&current) != cudaSuccess || current != device_index()) {
    std::cerr << "rank " << rank << ": expected cuda:" << device_index() << " to be current, got " << current
              << "\n";
    std::abort();  // mpirun ends every rank
  }
  if (rank != 0 && std::getenv("FUSEDMOE_MPI_TEST_ALL_RANKS") == nullptr) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int status = RUN_ALL_TESTS();
  std::vector<std::int64_t> statuses(static_cast<std::size_t>(ranks));
  world()->all_gather_int64(status, statuses);
  nccl().reset();  // before MPI and the CUDA runtime go away
  world().reset();
  for (std::int64_t s : statuses) {
    if (s != 0) return 1;
  }
  return 0;
}
