// Communicator over NCCL for CUDA tensors. Data collectives run on the caller's stream; host-side calls
// stage through a device buffer on the communicator's own stream and wait for it. Every NCCL and CUDA
// status is checked and turned into CommError / CudaError naming the call.
#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "backends/cuda_common/cuda_check.hpp"
#include "core/check.hpp"
#include "fusedmoe/communicator.hpp"
#include "fusedmoe/log.hpp"

namespace fusedmoe {

namespace {

static_assert(kNcclUniqueIdBytes == sizeof(ncclUniqueId),
              "kNcclUniqueIdBytes must match NCCL_UNIQUE_ID_BYTES");

[[noreturn]] void throw_nccl_error(ncclResult_t status, ncclComm_t comm, const char* call, const char* file,
                                   int line) {
  const char* detail = ncclGetLastError(comm);
  throw CommError(str_cat(
      "[nccl] ", call, " failed: ", ncclGetErrorString(status), " (", static_cast<int>(status), ")",
      detail != nullptr && *detail != '\0' ? str_cat(": ", detail) : std::string(), " at ", file, ":", line));
}

#define FUSEDMOE_NCCL_CHECK(comm, call)                                           \
  do {                                                                            \
    const ncclResult_t fusedmoe_nccl_status_ = (call);                            \
    if (fusedmoe_nccl_status_ != ncclSuccess) {                                   \
      throw_nccl_error(fusedmoe_nccl_status_, (comm), #call, __FILE__, __LINE__); \
    }                                                                             \
  } while (0)

// Host-side calls move at most this many bytes per staged step (bounds the staging buffer).
constexpr std::size_t kStagingChunk = std::size_t{64} << 20;

void check_device_index(int device, const char* what) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    throw Unsupported(str_cat("[nccl] ", what, ": no usable CUDA device: cudaGetDeviceCount failed with ",
                              cudaGetErrorName(status), ": ", cudaGetErrorString(status)));
  }
  FUSEDMOE_CHECK(device >= 0 && device < count, "[nccl] ", what, ": device ", device,
                 " does not exist (this process sees ", count, " CUDA device(s))");
}

// Runs `body` between ncclGroupStart and ncclGroupEnd; the group is closed even when `body` throws.
template <class Body>
void in_group(ncclComm_t comm, Body&& body) {
  FUSEDMOE_NCCL_CHECK(comm, ncclGroupStart());
  try {
    body();
  } catch (...) {
    (void)ncclGroupEnd();
    throw;
  }
  FUSEDMOE_NCCL_CHECK(comm, ncclGroupEnd());
}

std::vector<std::size_t> prefix_offsets(std::span<const std::size_t> sizes) {
  std::vector<std::size_t> offsets(sizes.size() + 1, 0);
  std::partial_sum(sizes.begin(), sizes.end(), offsets.begin() + 1);
  return offsets;
}

class NcclCommunicator final : public Communicator {
 public:
  // Takes ownership of `comm`, which lives on CUDA device `device`.
  NcclCommunicator(ncclComm_t comm, int device) : comm_(comm), device_(device) {
    cuda::DeviceGuard guard(device_);
    FUSEDMOE_NCCL_CHECK(comm_, ncclCommUserRank(comm_, &rank_));
    FUSEDMOE_NCCL_CHECK(comm_, ncclCommCount(comm_, &size_));
    FUSEDMOE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }

  ~NcclCommunicator() override {
    // Destructors never throw: failures are logged. At process exit the CUDA runtime may be gone already.
    int previous = -1;
    const bool switched = cudaGetDevice(&previous) == cudaSuccess && previous != device_ &&
                          cudaSetDevice(device_) == cudaSuccess;
    if (stream_ != nullptr) (void)cudaStreamSynchronize(stream_);
    const ncclResult_t status = ncclCommDestroy(comm_);
    if (status != ncclSuccess) {
      log(LogLevel::warn,
          str_cat("[nccl] ncclCommDestroy on rank ", rank_, " failed: ", ncclGetErrorString(status)));
    }
    if (staging_ != nullptr) (void)cudaFree(staging_);
    if (stream_ != nullptr) (void)cudaStreamDestroy(stream_);
    if (switched) (void)cudaSetDevice(previous);
  }

  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  std::string_view name() const override { return "nccl"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  DeviceKind device_kind() const override { return DeviceKind::cuda; }

  // ---- host-side calls: staged through device memory, synchronising --------------------------------------

  void all_gather_int64(std::int64_t value, std::span<std::int64_t> values) override {
    FUSEDMOE_CHECK(values.size() == static_cast<std::size_t>(size_), "[nccl] all_gather_int64 needs ", size_,
                   " slots, got ", values.size());
    cuda::DeviceGuard guard(device_);
    auto* stage = static_cast<std::int64_t*>(staging(values.size_bytes()));
    FUSEDMOE_CUDA_CHECK(
        cudaMemcpyAsync(stage + rank_, &value, sizeof value, cudaMemcpyHostToDevice, stream_));
    FUSEDMOE_NCCL_CHECK(comm_, ncclAllGather(stage + rank_, stage, 1, ncclInt64, comm_, stream_));
    FUSEDMOE_CUDA_CHECK(
        cudaMemcpyAsync(values.data(), stage, values.size_bytes(), cudaMemcpyDeviceToHost, stream_));
    wait_for_host_call("all_gather_int64");
  }

  void all_to_all_int64(std::span<const std::int64_t> send, std::span<std::int64_t> receive) override {
    FUSEDMOE_CHECK(send.size() == static_cast<std::size_t>(size_) && receive.size() == send.size(),
                   "[nccl] all_to_all_int64 needs ", size_, " values each way, got ", send.size(), " and ",
                   receive.size());
    cuda::DeviceGuard guard(device_);
    auto* stage = static_cast<std::int64_t*>(staging(2 * send.size_bytes()));
    FUSEDMOE_CUDA_CHECK(
        cudaMemcpyAsync(stage, send.data(), send.size_bytes(), cudaMemcpyHostToDevice, stream_));
    const std::vector<std::size_t> eight(send.size(), sizeof(std::int64_t));
    exchange(stage, eight, stage + size_, eight, stream_);
    FUSEDMOE_CUDA_CHECK(cudaMemcpyAsync(receive.data(), stage + size_, receive.size_bytes(),
                                        cudaMemcpyDeviceToHost, stream_));
    wait_for_host_call("all_to_all_int64");
  }

  void broadcast_bytes(void* data, std::size_t bytes, int root) override {
    check_peer(root, "broadcast_bytes root");
    cuda::DeviceGuard guard(device_);
    auto* host = static_cast<char*>(data);
    for (std::size_t offset = 0; offset < bytes; offset += kStagingChunk) {
      const std::size_t piece = std::min(kStagingChunk, bytes - offset);
      void* stage = staging(piece);
      if (rank_ == root) {
        FUSEDMOE_CUDA_CHECK(cudaMemcpyAsync(stage, host + offset, piece, cudaMemcpyHostToDevice, stream_));
      }
      FUSEDMOE_NCCL_CHECK(comm_, ncclBroadcast(stage, stage, piece, ncclUint8, root, comm_, stream_));
      if (rank_ != root) {
        FUSEDMOE_CUDA_CHECK(cudaMemcpyAsync(host + offset, stage, piece, cudaMemcpyDeviceToHost, stream_));
      }
      wait_for_host_call("broadcast_bytes");
    }
  }

  void send_bytes(const void* data, std::size_t bytes, int peer, int) override {
    send_receive_bytes(data, bytes, peer, nullptr, 0, peer, 0);
  }

  void receive_bytes(void* data, std::size_t bytes, int peer, int) override {
    send_receive_bytes(nullptr, 0, peer, data, bytes, peer, 0);
  }

  // Both directions in steps of `chunk` bytes, staged in 2 x chunk (at most kStagingChunk each way). A
  // message goes in the same pieces on both sides: in one piece when it is at most kStagingChunk (each
  // side's chunk then holds it), else in kStagingChunk pieces (both sides' chunks are then kStagingChunk).
  void send_receive_bytes(const void* send, std::size_t send_bytes, int destination, void* receive,
                          std::size_t receive_bytes, int source, int) override {
    check_peer(destination, "send destination");
    check_peer(source, "receive source");
    cuda::DeviceGuard guard(device_);
    const auto* out = static_cast<const char*>(send);
    auto* in = static_cast<char*>(receive);
    const std::size_t chunk = std::min(kStagingChunk, std::max(send_bytes, receive_bytes));
    for (std::size_t offset = 0; offset < std::max(send_bytes, receive_bytes); offset += chunk) {
      const std::size_t out_piece = offset < send_bytes ? std::min(chunk, send_bytes - offset) : 0;
      const std::size_t in_piece = offset < receive_bytes ? std::min(chunk, receive_bytes - offset) : 0;
      char* stage = static_cast<char*>(staging(2 * chunk));
      char* in_stage = stage + chunk;
      if (out_piece > 0) {
        FUSEDMOE_CUDA_CHECK(cudaMemcpyAsync(stage, out + offset, out_piece, cudaMemcpyHostToDevice, stream_));
      }
      in_group(comm_, [&] {
        if (out_piece > 0) {
          FUSEDMOE_NCCL_CHECK(comm_, ncclSend(stage, out_piece, ncclUint8, destination, comm_, stream_));
        }
        if (in_piece > 0) {
          FUSEDMOE_NCCL_CHECK(comm_, ncclRecv(in_stage, in_piece, ncclUint8, source, comm_, stream_));
        }
      });
      if (in_piece > 0) {
        FUSEDMOE_CUDA_CHECK(
            cudaMemcpyAsync(in + offset, in_stage, in_piece, cudaMemcpyDeviceToHost, stream_));
      }
      wait_for_host_call("send_receive_bytes");
    }
  }

  void barrier() override {
    cuda::DeviceGuard guard(device_);
    auto* stage = static_cast<std::int32_t*>(staging(sizeof(std::int32_t)));
    FUSEDMOE_CUDA_CHECK(cudaMemsetAsync(stage, 0, sizeof(std::int32_t), stream_));
    FUSEDMOE_NCCL_CHECK(comm_, ncclAllReduce(stage, stage, 1, ncclInt32, ncclSum, comm_, stream_));
    wait_for_host_call("barrier");
  }

  // ---- data collectives on device buffers, on the caller's stream ------------------------------------

  void all_gatherv(const void* send, std::size_t send_bytes, void* receive,
                   std::span<const std::size_t> receive_bytes, StreamHandle stream) override {
    check_counts(receive_bytes, "all_gatherv");
    FUSEDMOE_CHECK(receive_bytes[rank_] == send_bytes, "[nccl] all_gatherv: rank ", rank_, " sends ",
                   send_bytes, " bytes but expects ", receive_bytes[rank_], " from itself");
    const std::vector<std::size_t> to_each(static_cast<std::size_t>(size_), send_bytes);
    cuda::DeviceGuard guard(device_);
    exchange(send, to_each, receive, receive_bytes, static_cast<cudaStream_t>(stream), /*same_source=*/true);
  }

  void all_to_allv(const void* send, std::span<const std::size_t> send_bytes, void* receive,
                   std::span<const std::size_t> receive_bytes, StreamHandle stream) override {
    check_counts(send_bytes, "all_to_allv send");
    check_counts(receive_bytes, "all_to_allv receive");
    FUSEDMOE_CHECK(send_bytes[rank_] == receive_bytes[rank_], "[nccl] all_to_allv: rank ", rank_, " sends ",
                   send_bytes[rank_], " bytes to itself but expects ", receive_bytes[rank_]);
    cuda::DeviceGuard guard(device_);
    exchange(send, send_bytes, receive, receive_bytes, static_cast<cudaStream_t>(stream));
  }

  void reduce_scatter_sum_fp32(const float* send, float* receive, std::span<const std::size_t> receive_counts,
                               StreamHandle stream) override {
    check_counts(receive_counts, "reduce_scatter_sum_fp32");
    cuda::DeviceGuard guard(device_);
    const auto cuda_stream = static_cast<cudaStream_t>(stream);
    const bool even = std::all_of(receive_counts.begin(), receive_counts.end(),
                                  [&](std::size_t count) { return count == receive_counts[0]; });
    if (even) {
      if (receive_counts[0] == 0) return;
      FUSEDMOE_NCCL_CHECK(comm_, ncclReduceScatter(send, receive, receive_counts[0], ncclFloat32, ncclSum,
                                                   comm_, cuda_stream));
      return;
    }
    // Uneven segments: one ncclReduce per segment, rooted at the rank that keeps it, fused into one group.
    // Other ranks reduce "in place" (recvbuff = sendbuff), which NCCL leaves untouched off the root.
    const std::vector<std::size_t> offsets = prefix_offsets(receive_counts);
    in_group(comm_, [&] {
      for (int root = 0; root < size_; ++root) {
        if (receive_counts[root] == 0) continue;  // every rank skips the same segments
        const float* segment = send + offsets[root];
        float* target = root == rank_ ? receive : const_cast<float*>(segment);
        FUSEDMOE_NCCL_CHECK(comm_, ncclReduce(segment, target, receive_counts[root], ncclFloat32, ncclSum,
                                              root, comm_, cuda_stream));
      }
    });
  }

 private:
  void check_peer(int peer, const char* what) const {
    FUSEDMOE_CHECK(peer >= 0 && peer < size_, "[nccl] ", what, " = ", peer, ": expected a rank in [0, ",
                   size_, ")");
  }

  void check_counts(std::span<const std::size_t> counts, const char* what) const {
    FUSEDMOE_CHECK(counts.size() == static_cast<std::size_t>(size_), "[nccl] ", what, ": ", counts.size(),
                   " counts for ", size_, " ranks");
  }

  // Rank r gets send_bytes[r] bytes (from `send` + the sum of the earlier counts, or all from `send` when
  // same_source), and receive_bytes[r] bytes arrive from rank r. The own part is a device-to-device copy;
  // empty messages are skipped on both sides (the counts agree).
  void exchange(const void* send, std::span<const std::size_t> send_bytes, void* receive,
                std::span<const std::size_t> receive_bytes, cudaStream_t stream, bool same_source = false) {
    const std::vector<std::size_t> send_offsets = prefix_offsets(send_bytes);
    const std::vector<std::size_t> receive_offsets = prefix_offsets(receive_bytes);
    const auto* out = static_cast<const char*>(send);
    auto* in = static_cast<char*>(receive);
    auto out_at = [&](int r) { return out + (same_source ? 0 : send_offsets[r]); };
    if (receive_bytes[rank_] > 0) {
      FUSEDMOE_CUDA_CHECK(cudaMemcpyAsync(in + receive_offsets[rank_], out_at(rank_), receive_bytes[rank_],
                                          cudaMemcpyDeviceToDevice, stream));
    }
    in_group(comm_, [&] {
      for (int peer = 0; peer < size_; ++peer) {
        if (peer == rank_) continue;
        if (send_bytes[peer] > 0) {
          FUSEDMOE_NCCL_CHECK(comm_,
                              ncclSend(out_at(peer), send_bytes[peer], ncclUint8, peer, comm_, stream));
        }
        if (receive_bytes[peer] > 0) {
          FUSEDMOE_NCCL_CHECK(comm_, ncclRecv(in + receive_offsets[peer], receive_bytes[peer], ncclUint8,
                                              peer, comm_, stream));
        }
      }
    });
  }

  // A device buffer of at least `bytes` (grown on demand; growing waits for the device).
  void* staging(std::size_t bytes) {
    if (bytes <= staging_bytes_ && staging_ != nullptr) return staging_;
    if (staging_ != nullptr) {
      FUSEDMOE_CUDA_CHECK(cudaStreamSynchronize(stream_));
      FUSEDMOE_CUDA_CHECK(cudaFree(staging_));
      staging_ = nullptr;
      staging_bytes_ = 0;
    }
    const std::size_t size = std::max<std::size_t>(bytes, 4096);
    FUSEDMOE_CUDA_CHECK(cudaMalloc(&staging_, size));
    staging_bytes_ = size;
    return staging_;
  }

  // Host-side calls wait for their staged copies. Inside a CUDA graph capture that is impossible: say so.
  void wait_for_host_call(const char* what) {
    const cudaError_t status = cudaStreamSynchronize(stream_);
    if (status == cudaSuccess) return;
    if (status == cudaErrorStreamCaptureUnsupported || status == cudaErrorStreamCaptureImplicit ||
        status == cudaErrorStreamCaptureInvalidated) {
      throw Unsupported(
          str_cat("[nccl] ", what,
                  " is a host-side call that waits for the GPU: it cannot run while a CUDA graph is "
                  "being captured (",
                  cudaGetErrorName(status), ")"));
    }
    cuda::throw_cuda_error(status, "cudaStreamSynchronize(stream_)", __FILE__, __LINE__);
  }

  ncclComm_t comm_ = nullptr;
  int device_ = 0;
  int rank_ = 0, size_ = 1;
  cudaStream_t stream_ = nullptr;
  void* staging_ = nullptr;
  std::size_t staging_bytes_ = 0;
};

ncclUniqueId unique_id_from(std::span<const std::byte> bytes) {
  FUSEDMOE_CHECK(bytes.size() == sizeof(ncclUniqueId), "[nccl] a unique id has ", sizeof(ncclUniqueId),
                 " bytes (make_nccl_unique_id), got ", bytes.size());
  ncclUniqueId id;
  std::memcpy(&id, bytes.data(), sizeof id);
  return id;
}

// Every rank's `problem` (empty: none), gathered over `bootstrap`: "rank 1: ...; rank 3: ...", or empty.
std::string problems_of_every_rank(Communicator& bootstrap, const std::string& problem) {
  std::vector<std::int64_t> lengths(static_cast<std::size_t>(bootstrap.size()));
  bootstrap.all_gather_int64(static_cast<std::int64_t>(problem.size()), lengths);
  std::string problems;
  for (int rank = 0; rank < bootstrap.size(); ++rank) {
    if (lengths[static_cast<std::size_t>(rank)] == 0) continue;
    const std::size_t length = static_cast<std::size_t>(lengths[static_cast<std::size_t>(rank)]);
    std::string text = rank == bootstrap.rank() ? problem : std::string(length, ' ');
    bootstrap.broadcast_bytes(text.data(), text.size(), rank);
    append_joined(problems, "; ", str_cat("rank ", rank, ": ", text));
  }
  return problems;
}

}  // namespace

bool nccl_available() {
  return true;
}

std::vector<std::byte> make_nccl_unique_id() {
  ncclUniqueId id;
  FUSEDMOE_NCCL_CHECK(nullptr, ncclGetUniqueId(&id));
  std::vector<std::byte> bytes(sizeof id);
  std::memcpy(bytes.data(), &id, sizeof id);
  return bytes;
}

std::shared_ptr<Communicator> make_nccl_communicator(std::span<const std::byte> unique_id, int rank, int size,
                                                     int device) {
  FUSEDMOE_CHECK(size >= 1 && rank >= 0 && rank < size, "[nccl] make_nccl_communicator: rank ", rank, " of ",
                 size, ": expected 0 <= rank < size");
  const ncclUniqueId id = unique_id_from(unique_id);
  check_device_index(device, "make_nccl_communicator");
  // One process per GPU: the rank's device becomes (and stays) current on the calling thread, so the streams
  // and buffers the caller makes next live where the communicator runs.
  FUSEDMOE_CUDA_CHECK(cudaSetDevice(device));
  ncclComm_t comm = nullptr;
  FUSEDMOE_NCCL_CHECK(nullptr, ncclCommInitRank(&comm, size, id, rank));
  try {
    return std::make_shared<NcclCommunicator>(comm, device);
  } catch (...) {
    (void)ncclCommDestroy(comm);
    throw;
  }
}

// Every rank prepares (its device; rank 0 also the id) before any rank enters ncclCommInitRank, and the
// ranks compare notes over the bootstrap: where one rank cannot take part, every rank throws with that rank's
// reason. Otherwise the others would wait in ncclCommInitRank for a rank that never comes.
std::shared_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, int device) {
  std::vector<std::byte> id(kNcclUniqueIdBytes);
  std::string problem;
  try {
    check_device_index(device, "make_nccl_communicator");
    FUSEDMOE_CUDA_CHECK(cudaSetDevice(device));
    if (bootstrap.rank() == 0) id = make_nccl_unique_id();
  } catch (const Error& error) {
    problem = error.what();
  }
  if (const std::string problems = problems_of_every_rank(bootstrap, problem); !problems.empty()) {
    throw CommError(
        str_cat("[nccl] make_nccl_communicator: not every rank can set up NCCL, so none does: ", problems));
  }
  bootstrap.broadcast_bytes(id.data(), id.size(), 0);
  return make_nccl_communicator(id, bootstrap.rank(), bootstrap.size(), device);
}

std::vector<std::shared_ptr<Communicator>> make_nccl_communicators_single_process(
    std::span<const int> devices) {
  FUSEDMOE_CHECK(!devices.empty(), "[nccl] make_nccl_communicators_single_process: no devices given");
  for (int device : devices) check_device_index(device, "make_nccl_communicators_single_process");
  std::vector<ncclComm_t> comms(devices.size(), nullptr);
  FUSEDMOE_NCCL_CHECK(nullptr,
                      ncclCommInitAll(comms.data(), static_cast<int>(devices.size()), devices.data()));
  std::vector<std::shared_ptr<Communicator>> communicators;
  communicators.reserve(devices.size());
  std::size_t wrapped = 0;
  try {
    for (; wrapped < devices.size(); ++wrapped) {
      communicators.push_back(std::make_shared<NcclCommunicator>(comms[wrapped], devices[wrapped]));
    }
  } catch (...) {
    for (std::size_t i = wrapped; i < comms.size(); ++i) (void)ncclCommDestroy(comms[i]);
    throw;
  }
  return communicators;
}

}  // namespace fusedmoe
