// Communicator over MPI for CPU tensors. Every call's status is checked (MPI_ERRORS_RETURN on our
// communicator) and turned into CommError naming the call.
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstring>
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

// MPI counts and displacements are int: byte messages whose size differs between ranks (all_to_allv, the
// point-to-point calls) go as pieces of at most this many bytes, so that no rank can fail a size limit that
// its peers pass (it would throw while they wait in the exchange).
constexpr std::size_t kChunk = 1 << 20;
// all_to_allv's pieces travel as point-to-point messages with this tag (in order per peer).
constexpr int kAllToAllTag = 0x7a11;

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
    // receive_bytes is the same on every rank, so a size refused here is refused on all of them.
    check_counts(receive_bytes, "all_gatherv");
    FUSEDMOE_CHECK(receive_bytes[rank_] == send_bytes, "[mpi] all_gatherv: rank ", rank_, " sends ",
                   send_bytes, " bytes but expects ", receive_bytes[rank_], " from itself");
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

  // Each rank's counts differ, so no int limit may apply: pieces of kChunk bytes, point to point (the
  // pattern of MPI's own linear all-to-all), the bytes to and from this rank copied.
  void all_to_allv(const void* send, std::span<const std::size_t> send_bytes, void* receive,
                   std::span<const std::size_t> receive_bytes, StreamHandle) override {
    check_counts(send_bytes, "all_to_allv send");
    check_counts(receive_bytes, "all_to_allv receive");
    FUSEDMOE_CHECK(send_bytes[rank_] == receive_bytes[rank_], "[mpi] all_to_allv: rank ", rank_, " sends ",
                   send_bytes[rank_], " bytes to itself but expects ", receive_bytes[rank_]);
    const auto* send_base = static_cast<const char*>(send);
    auto* receive_base = static_cast<char*>(receive);
    std::vector<MPI_Request> requests;
    std::size_t send_offset = 0, receive_offset = 0;
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) {
        if (send_bytes[r] > 0)
          std::memcpy(receive_base + receive_offset, send_base + send_offset, send_bytes[r]);
      } else {
        post_pieces(receive_base + receive_offset, receive_bytes[r], r, /*receive=*/true, requests);
        post_pieces(const_cast<char*>(send_base + send_offset), send_bytes[r], r, /*receive=*/false,
                    requests);
      }
      send_offset += send_bytes[r];
      receive_offset += receive_bytes[r];
    }
    wait_all(requests);
  }

  void reduce_scatter_sum_fp32(const float* send, float* receive, std::span<const std::size_t> receive_counts,
                               StreamHandle) override {
    check_counts(receive_counts, "reduce_scatter_sum_fp32");  // the same on every rank
    std::vector<int> counts(static_cast<std::size_t>(size_));
    for (int r = 0; r < size_; ++r) counts[r] = checked_count(receive_counts[r], "reduce_scatter");
    FUSEDMOE_MPI_CHECK(MPI_Reduce_scatter(send, receive, counts.data(), MPI_FLOAT, MPI_SUM, comm_));
  }

  void send_bytes(const void* data, std::size_t bytes, int peer, int tag) override {
    check_peer(peer, "send_bytes peer");
    std::vector<MPI_Request> requests;
    post_pieces(const_cast<char*>(static_cast<const char*>(data)), bytes, peer, /*receive=*/false, requests,
                tag);
    wait_all(requests);
  }

  void receive_bytes(void* data, std::size_t bytes, int peer, int tag) override {
    check_peer(peer, "receive_bytes peer");
    std::vector<MPI_Request> requests;
    post_pieces(static_cast<char*>(data), bytes, peer, /*receive=*/true, requests, tag);
    wait_all(requests);
  }

  void send_receive_bytes(const void* send, std::size_t send_bytes, int destination, void* receive,
                          std::size_t receive_bytes, int source, int tag) override {
    check_peer(destination, "send_receive_bytes destination");
    check_peer(source, "send_receive_bytes source");
    std::vector<MPI_Request> requests;
    post_pieces(static_cast<char*>(receive), receive_bytes, source, /*receive=*/true, requests, tag);
    post_pieces(const_cast<char*>(static_cast<const char*>(send)), send_bytes, destination, /*receive=*/false,
                requests, tag);
    wait_all(requests);
  }

  void barrier() override { FUSEDMOE_MPI_CHECK(MPI_Barrier(comm_)); }

 private:
  void check_counts(std::span<const std::size_t> counts, const char* what) const {
    FUSEDMOE_CHECK(counts.size() == static_cast<std::size_t>(size_), "[mpi] ", what, ": expected ", size_,
                   " counts (one per rank), got ", counts.size());
  }
  void check_peer(int peer, const char* what) const {
    FUSEDMOE_CHECK(peer >= 0 && peer < size_, "[mpi] ", what, " = ", peer, ": expected a rank in [0, ", size_,
                   ")");
  }
  // Nonblocking sends or receives of `bytes` at `data` with `peer`, in pieces of at most kChunk bytes (one
  // empty message for 0 bytes, as send_bytes sends); MPI keeps their order per peer and tag.
  void post_pieces(char* data, std::size_t bytes, int peer, bool receive, std::vector<MPI_Request>& requests,
                   int tag = kAllToAllTag) {
    for (std::size_t offset = 0; offset < bytes || (offset == 0 && bytes == 0); offset += kChunk) {
      const int piece = static_cast<int>(std::min(kChunk, bytes - offset));
      MPI_Request request = MPI_REQUEST_NULL;
      if (receive) {
        FUSEDMOE_MPI_CHECK(MPI_Irecv(data + offset, piece, MPI_BYTE, peer, tag, comm_, &request));
      } else {
        FUSEDMOE_MPI_CHECK(MPI_Isend(data + offset, piece, MPI_BYTE, peer, tag, comm_, &request));
      }
      requests.push_back(request);
    }
  }
  void wait_all(std::vector<MPI_Request>& requests) {
    if (requests.empty()) return;
    FUSEDMOE_MPI_CHECK(MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE));
  }

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
    // The forward's worker threads never call MPI; the thread that does must be allowed to (FUNNELED).
    FUSEDMOE_CHECK(provided >= MPI_THREAD_FUNNELED, "[mpi] MPI_Init_thread gave thread level ", provided,
                   ": fusedmoe needs at least MPI_THREAD_FUNNELED (", MPI_THREAD_FUNNELED,
                   "); use an MPI library built with thread support");
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
