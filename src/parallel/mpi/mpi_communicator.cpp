// Communicator over MPI for CPU tensors. Every call's status is checked (MPI_ERRORS_RETURN on our
// communicator) and turned into CommError naming the call.
#include <mpi.h>

#include <climits>
#include <vector>

#include "core/check.hpp"
#include "fusedmoe/communicator.hpp"

namespace fusedmoe {

namespace {

#define FUSEDMOE_MPI_CHECK(call)                                                                          \
  do {                                                                                                    \
    const int mpi_status = (call);                                                                        \
    if (mpi_status != MPI_SUCCESS) {                                                                      \
      char text[MPI_MAX_ERROR_STRING];                                                                    \
      int length = 0;                                                                                     \
      MPI_Error_string(mpi_status, text, &length);                                                        \
      throw CommError(str_cat("[mpi] ", #call, " failed with code ", mpi_status, ": ",                    \
                              std::string(text, static_cast<std::size_t>(length)), " at ", __FILE__, ":", \
                              __LINE__));                                                                 \
    }                                                                                                     \
  } while (0)

// MPI counts are int: larger messages go as MPI_BYTE runs of this contiguous type.
constexpr std::size_t kChunk = 1 << 20;

int checked_count(std::size_t bytes, const char* what) {
  FUSEDMOE_CHECK(bytes <= static_cast<std::size_t>(INT_MAX), "[mpi] ", what, ": ", bytes,
                 " elements exceed MPI's int count limit");
  return static_cast<int>(bytes);
}

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(MPI_Comm comm) {
    FUSEDMOE_MPI_CHECK(MPI_Comm_dup(comm, &comm_));
    FUSEDMOE_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
    FUSEDMOE_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    FUSEDMOE_MPI_CHECK(MPI_Comm_size(comm_, &size_));
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);
  }

  std::string_view name() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  DeviceKind device_kind() const override { return DeviceKind::cpu; }

  void all_gather_int64(std::int64_t value, std::span<std::int64_t> values) override {
    FUSEDMOE_CHECK(values.size() == static_cast<std::size_t>(size_), "[mpi] all_gather_int64 needs ", size_,
                   " slots");
    FUSEDMOE_MPI_CHECK(MPI_Allgather(&value, 1, MPI_INT64_T, values.data(), 1, MPI_INT64_T, comm_));
  }

  void all_to_all_int64(std::span<const std::int64_t> send, std::span<std::int64_t> receive) override {
    FUSEDMOE_CHECK(send.size() == static_cast<std::size_t>(size_) && receive.size() == send.size(),
                   "[mpi] all_to_all_int64 needs ", size_, " values each way, got ", send.size(), " and ",
                   receive.size());
    FUSEDMOE_MPI_CHECK(MPI_Alltoall(send.data(), 1, MPI_INT64_T, receive.data(), 1, MPI_INT64_T, comm_));
  }

  void broadcast_bytes(void* data, std::size_t bytes, int root) override {
    FUSEDMOE_MPI_CHECK(MPI_Bcast(data, checked_count(bytes, "broadcast"), MPI_BYTE, root, comm_));
  }

  void all_gatherv(const void* send, std::size_t send_bytes, void* receive,
                   std::span<const std::size_t> receive_bytes, StreamHandle) override {
    std::vector<int> counts(static_cast<std::size_t>(size_)), displacements(static_cast<std::size_t>(size_));
    std::size_t offset = 0;
    for (int r = 0; r < size_; ++r) {
      counts[r] = checked_count(receive_bytes[r], "all_gatherv");
      displacements[r] = checked_count(offset, "all_gatherv offset");
      offset += receive_bytes[r];
    }
    FUSEDMOE_MPI_CHECK(MPI_Allgatherv(send, checked_count(send_bytes, "all_gatherv"), MPI_BYTE, receive,
                                      counts.data(), displacements.data(), MPI_BYTE, comm_));
  }

  void all_to_allv(const void* send, std::span<const std::size_t> send_bytes, void* receive,
                   std::span<const std::size_t> receive_bytes, StreamHandle) override {
    std::vector<int> send_counts(size_), send_offsets(size_), receive_counts(size_), receive_offsets(size_);
    std::size_t send_offset = 0, receive_offset = 0;
    for (int r = 0; r < size_; ++r) {
      send_counts[r] = checked_count(send_bytes[r], "all_to_allv");
      send_offsets[r] = checked_count(send_offset, "all_to_allv offset");
      receive_counts[r] = checked_count(receive_bytes[r], "all_to_allv");
      receive_offsets[r] = checked_count(receive_offset, "all_to_allv offset");
      send_offset += send_bytes[r];
      receive_offset += receive_bytes[r];
    }
    FUSEDMOE_MPI_CHECK(MPI_Alltoallv(send, send_counts.data(), send_offsets.data(), MPI_BYTE, receive,
                                     receive_counts.data(), receive_offsets.data(), MPI_BYTE, comm_));
  }

  void reduce_scatter_sum_fp32(const float* send, float* receive, std::span<const std::size_t> receive_counts,
                               StreamHandle) override {
    std::vector<int> counts(static_cast<std::size_t>(size_));
    for (int r = 0; r < size_; ++r) counts[r] = checked_count(receive_counts[r], "reduce_scatter");
    FUSEDMOE_MPI_CHECK(MPI_Reduce_scatter(send, receive, counts.data(), MPI_FLOAT, MPI_SUM, comm_));
  }

  void send_bytes(const void* data, std::size_t bytes, int peer, int tag) override {
    const auto* bytes_ptr = static_cast<const char*>(data);
    for (std::size_t offset = 0; offset < bytes || offset == 0; offset += kChunk) {
      const std::size_t piece = std::min(kChunk, bytes - offset);
      FUSEDMOE_MPI_CHECK(MPI_Send(bytes_ptr + offset, static_cast<int>(piece), MPI_BYTE, peer, tag, comm_));
      if (bytes == 0) break;
    }
  }

  void receive_bytes(void* data, std::size_t bytes, int peer, int tag) override {
    auto* bytes_ptr = static_cast<char*>(data);
    for (std::size_t offset = 0; offset < bytes || offset == 0; offset += kChunk) {
      const std::size_t piece = std::min(kChunk, bytes - offset);
      FUSEDMOE_MPI_CHECK(MPI_Recv(bytes_ptr + offset, static_cast<int>(piece), MPI_BYTE, peer, tag, comm_,
                                  MPI_STATUS_IGNORE));
      if (bytes == 0) break;
    }
  }

  void send_receive_bytes(const void* send, std::size_t send_bytes, int destination, void* receive,
                          std::size_t receive_bytes, int source, int tag) override {
    FUSEDMOE_MPI_CHECK(MPI_Sendrecv(send, checked_count(send_bytes, "sendrecv"), MPI_BYTE, destination, tag,
                                    receive, checked_count(receive_bytes, "sendrecv"), MPI_BYTE, source, tag,
                                    comm_, MPI_STATUS_IGNORE));
  }

  void barrier() override { FUSEDMOE_MPI_CHECK(MPI_Barrier(comm_)); }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
};

}  // namespace

bool mpi_available() {
  return true;
}

std::shared_ptr<Communicator> make_mpi_world_communicator() {
  int initialized = 0;
  FUSEDMOE_MPI_CHECK(MPI_Initialized(&initialized));
  if (!initialized) {
    int provided = 0;
    FUSEDMOE_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided));
    // MPI stays initialised for the process; it is finalised at exit.
    std::atexit([] {
      int finalized = 0;
      MPI_Finalized(&finalized);
      if (!finalized) MPI_Finalize();
    });
  }
  return std::make_shared<MpiCommunicator>(MPI_COMM_WORLD);
}

void abort_mpi_job(int exit_code) {
  int initialized = 0, finalized = 0, ranks = 1;
  if (MPI_Initialized(&initialized) != MPI_SUCCESS || !initialized) return;
  if (MPI_Finalized(&finalized) != MPI_SUCCESS || finalized) return;
  if (MPI_Comm_size(MPI_COMM_WORLD, &ranks) != MPI_SUCCESS || ranks <= 1) return;
  MPI_Abort(MPI_COMM_WORLD, exit_code);
}

std::shared_ptr<Communicator> make_mpi_communicator(const void* mpi_comm) {
  FUSEDMOE_CHECK(mpi_comm != nullptr,
                 "[mpi] make_mpi_communicator: expected a pointer to an MPI_Comm, got null");
  return std::make_shared<MpiCommunicator>(*static_cast<const MPI_Comm*>(mpi_comm));
}

}  // namespace fusedmoe
