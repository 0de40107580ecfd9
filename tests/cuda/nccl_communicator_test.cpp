// The NCCL communicator on 2 GPUs of this process (one thread per rank): every collective, uneven and empty
// counts, the host-side calls, and the three ways to create it. Skips without 2 GPUs or NCCL.
#include <cmath>
#include <cstring>
#include <numeric>

#include "cuda/ep_device_case.hpp"

namespace fusedmoe {
namespace {

const std::vector<int> kDevices = {0, 1};

std::vector<std::shared_ptr<Communicator>> two_ranks() {
  return make_nccl_communicators_single_process(kDevices);
}

// Bytes on the current device (the rank's GPU), from a host vector.
Tensor device_bytes(const std::vector<std::uint8_t>& bytes, int device) {
  Tensor host = Tensor::empty(DType::uint8, {static_cast<std::int64_t>(bytes.size())});
  if (!bytes.empty()) std::memcpy(host.data(), bytes.data(), bytes.size());
  return testing::to_device(host, Device::cuda(device));
}

std::vector<std::uint8_t> host_bytes(const Tensor& device) {
  const Tensor host = testing::to_host(device);
  const auto* data = host.data_as<const std::uint8_t>();
  return {data, data + host.nbytes()};
}

// The byte pattern rank `from` sends to rank `to`.
std::vector<std::uint8_t> pattern(int from, int to, std::size_t count) {
  std::vector<std::uint8_t> bytes(count);
  for (std::size_t i = 0; i < count; ++i) bytes[i] = static_cast<std::uint8_t>(from * 61 + to * 17 + i * 3);
  return bytes;
}

TEST(NcclCommunicator, IdentifiesItself) {
  FUSEDMOE_REQUIRE_NCCL_GPUS(2);
  testing::run_ranks(two_ranks(), kDevices, [](int rank, const std::shared_ptr<Communicator>& communicator) {
    EXPECT_EQ(communicator->name(), "nccl");
    EXPECT_EQ(communicator->rank(), rank);
    EXPECT_EQ(communicator->size(), 2);
    EXPECT_EQ(communicator->device_kind(), DeviceKind::cuda);
  });
}

TEST(NcclCommunicator, AllGathervWithUnevenAndEmptyShares) {
  FUSEDMOE_REQUIRE_NCCL_GPUS(2);
  for (const std::vector<std::size_t>& shares :
       {std::vector<std::size_t>{5, 0}, std::vector<std::size_t>{3, 7001}, std::vector<std::size_t>{0, 0}}) {
    testing::run_ranks(
        two_ranks(), kDevices, [&](int rank, const std::shared_ptr<Communicator>& communicator) {
          const Tensor send = device_bytes(pattern(rank, 0, shares[rank]), rank);
          const Tensor receive = Tensor::zeros(
              DType::uint8, {static_cast<std::int64_t>(shares[0] + shares[1] + 1)}, Device::cuda(rank));
          testing::TestStream stream;
          communicator->all_gatherv(send.data(), shares[rank], receive.data(), shares, stream.get());
          stream.synchronize();
          std::vector<std::uint8_t> expected = pattern(0, 0, shares[0]);
          const std::vector<std::uint8_t> second = pattern(1, 0, shares[1]);
          expected.insert(expected.end(), second.begin(), second.end());
          expected.push_back(0);  // untouched past the end
          EXPECT_EQ(host_bytes(receive), expected)
              << "rank " << rank << ", shares " << shares[0] << "/" << shares[1];
        });
  }
}

TEST(NcclCommunicator, AllToAllvWithUnevenAndZeroCounts) {
  FUSEDMOE_REQUIRE_NCCL_GPUS(2);
  // bytes[from][to]: rank 0 keeps 2 and sends none; rank 1 sends 5 and keeps 3; then a round of zeros.
  for (const std::vector<std::vector<std::size_t>>& bytes :
       {std::vector<std::vector<std::size_t>>{{2, 0}, {5, 3}},
        std::vector<std::vector<std::size_t>>{{0, 9}, {4, 0}},
        std::vector<std::vector<std::size_t>>{{0, 0}, {0, 0}}}) {
    testing::run_ranks(
        two_ranks(), kDevices, [&](int rank, const std::shared_ptr<Communicator>& communicator) {
          std::vector<std::uint8_t> out;
          for (int to = 0; to < 2; ++to) {
            const std::vector<std::uint8_t> part = pattern(rank, to, bytes[rank][to]);
            out.insert(out.end(), part.begin(), part.end());
          }
          const std::vector<std::size_t> receive_bytes = {bytes[0][rank], bytes[1][rank]};
          const Tensor send = device_bytes(out, rank);
          const Tensor receive =
              Tensor::zeros(DType::uint8, {static_cast<std::int64_t>(receive_bytes[0] + receive_bytes[1])},
                            Device::cuda(rank));
          testing::TestStream stream;
          communicator->all_to_allv(send.data(), bytes[rank], receive.data(), receive_bytes, stream.get());
          stream.synchronize();
          std::vector<std::uint8_t> expected;
          for (int from = 0; from < 2; ++from) {
            const std::vector<std::uint8_t> part = pattern(from, rank, bytes[from][rank]);
            expected.insert(expected.end(), part.begin(), part.end());
          }
          EXPECT_EQ(host_bytes(receive), expected) << "rank " << rank;
        });
  }
}

TEST(NcclCommunicator, ReduceScatterSumWithEvenUnevenAndEmptySegments) {
  FUSEDMOE_REQUIRE_NCCL_GPUS(2);
  for (const std::vector<std::size_t>& counts :
       {std::vector<std::size_t>{4, 4}, std::vector<std::size_t>{3, 0}, std::vector<std::size_t>{0, 1000},
        std::vector<std::size_t>{17, 5}}) {
    const std::size_t total = counts[0] + counts[1];
    auto value = [](int rank, std::size_t i) {
      return static_cast<float>(rank * 1000) + static_cast<float>(i) * 0.5f;
    };
    testing::run_ranks(
        two_ranks(), kDevices, [&](int rank, const std::shared_ptr<Communicator>& communicator) {
          Tensor send_host = Tensor::empty(DType::fp32, {static_cast<std::int64_t>(total)});
          for (std::size_t i = 0; i < total; ++i) send_host.data_as<float>()[i] = value(rank, i);
          const Tensor send = testing::to_device(send_host, Device::cuda(rank));
          // Poisoned, one element past the rank's segment too: a reduce-scatter that writes nothing (the
          // buffer of the previous case may come back at the same address) or too much fails.
          const Tensor receive = testing::empty_poisoned(
              DType::fp32, {static_cast<std::int64_t>(counts[rank] + 1)}, Device::cuda(rank));
          testing::TestStream stream;
          communicator->reduce_scatter_sum_fp32(send.data_as<const float>(), receive.data_as<float>(), counts,
                                                stream.get());
          stream.synchronize();
          const Tensor result = testing::to_host(receive);
          const std::size_t offset = rank == 0 ? 0 : counts[0];
          for (std::size_t i = 0; i < counts[rank]; ++i) {
            EXPECT_EQ(result.data_as<const float>()[i], value(0, offset + i) + value(1, offset + i))
                << "rank " << rank << " element " << i;
          }
          EXPECT_TRUE(std::isnan(result.data_as<const float>()[counts[rank]]))
              << "rank " << rank << " wrote past";
        });
  }
}

TEST(NcclCommunicator, HostSideCalls) {
  FUSEDMOE_REQUIRE_NCCL_GPUS(2);
  testing::run_ranks(two_ranks(), kDevices, [](int rank, const std::shared_ptr<Communicator>& communicator) {
    std::vector<std::int64_t> all(2);
    communicator->all_gather_int64(rank == 0 ? -7 : (std::int64_t{1} << 40), all);
    EXPECT_EQ(all, (std::vector<std::int64_t>{-7, std::int64_t{1} << 40}));

    const std::vector<std::int64_t> send = {10 * rank + 0, 10 * rank + 1};
    std::vector<std::int64_t> receive(2);
    communicator->all_to_all_int64(send, receive);
    EXPECT_EQ(receive, (std::vector<std::int64_t>{rank, 10 + rank}));

    std::vector<std::uint8_t> message = rank == 1 ? pattern(1, 0, 1000) : std::vector<std::uint8_t>(1000, 0);
    communicator->broadcast_bytes(message.data(), message.size(), 1);
    EXPECT_EQ(message, pattern(1, 0, 1000));

    // Blocking send / receive in a fixed order, then a simultaneous exchange larger than one staging chunk.
    const std::size_t small = 4099;
    if (rank == 0) {
      const std::vector<std::uint8_t> out = pattern(0, 1, small);
      communicator->send_bytes(out.data(), out.size(), 1, 3);
    } else {
      std::vector<std::uint8_t> in(small);
      communicator->receive_bytes(in.data(), in.size(), 0, 3);
      EXPECT_EQ(in, pattern(0, 1, small));
    }
    const std::size_t large = (std::size_t{64} << 20) + 12345;
    const std::vector<std::uint8_t> out = pattern(rank, 1 - rank, large);
    std::vector<std::uint8_t> in(large);
    communicator->send_receive_bytes(out.data(), out.size(), 1 - rank, in.data(), in.size(), 1 - rank, 5);
    EXPECT_TRUE(in == pattern(1 - rank, rank, large)) << "rank " << rank;
    communicator->barrier();
  });
}

// (b) of the three ways: a unique id made here and handed to every rank (how an engine embeds it).
TEST(NcclCommunicator, FromUniqueId) {
  FUSEDMOE_REQUIRE_NCCL_GPUS(2);
  const std::vector<std::byte> id = make_nccl_unique_id();
  ASSERT_EQ(id.size(), kNcclUniqueIdBytes);
  std::vector<std::shared_ptr<Communicator>> empty(2);  // each thread makes its own
  testing::run_ranks(empty, kDevices, [&](int rank, const std::shared_ptr<Communicator>&) {
    const std::shared_ptr<Communicator> communicator = make_nccl_communicator(id, rank, 2, kDevices[rank]);
    std::vector<std::int64_t> all(2);
    communicator->all_gather_int64(rank + 100, all);
    EXPECT_EQ(all, (std::vector<std::int64_t>{100, 101}));
  });
}

TEST(NcclCommunicator, RejectsBadArguments) {
  if (!nccl_available()) {
    EXPECT_THROW(make_nccl_unique_id(), Unsupported);
    GTEST_SKIP() << "fusedmoe was built without NCCL (the factory functions throw Unsupported, checked)";
  }
  EXPECT_THROW(make_nccl_communicator(std::vector<std::byte>(3), 0, 1, 0), InvalidArgument);
  EXPECT_THROW(make_nccl_communicator(std::vector<std::byte>(kNcclUniqueIdBytes), 2, 2, 0), InvalidArgument);
  FUSEDMOE_REQUIRE_CUDA();
  const std::vector<int> missing = {1000};
  EXPECT_THROW(make_nccl_communicators_single_process(missing), InvalidArgument);
}

}  // namespace
}  // namespace fusedmoe
