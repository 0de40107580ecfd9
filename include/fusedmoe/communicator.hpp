// Communicator: the collectives expert parallelism needs, over an existing library (MPI for CPU
// tensors, NCCL for GPU tensors). Every rank must call the collectives in the same order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fusedmoe/device.hpp"
#include "fusedmoe/dtype.hpp"

namespace fusedmoe {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string_view name() const = 0;  // "mpi", "nccl"
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Where the buffers of the data collectives live.
  virtual DeviceKind device_kind() const = 0;

  // Host integers: every rank contributes `value`, everyone gets all of them (index = rank).
  virtual void all_gather_int64(std::int64_t value, std::span<std::int64_t> values) = 0;
  // Host integers, one per rank each way: send[r] goes to rank r, receive[r] is what rank r sent here.
  virtual void all_to_all_int64(std::span<const std::int64_t> send, std::span<std::int64_t> receive) = 0;
  // Host bytes: rank `root`'s bytes to everyone (same size on every rank).
  virtual void broadcast_bytes(void* data, std::size_t bytes, int root) = 0;
  // Data collectives on device_kind() buffers; counts in bytes per rank.
  virtual void all_gatherv(const void* send, std::size_t send_bytes, void* receive,
                           std::span<const std::size_t> receive_bytes, StreamHandle stream) = 0;
  virtual void all_to_allv(const void* send, std::span<const std::size_t> send_bytes, void* receive,
                           std::span<const std::size_t> receive_bytes, StreamHandle stream) = 0;
  // Element-wise sum over ranks of `send` (fp32, sum of receive_counts elements); rank r keeps the r-th
  // segment of receive_counts[r] elements.
  virtual void reduce_scatter_sum_fp32(const float* send, float* receive,
                                       std::span<const std::size_t> receive_counts, StreamHandle stream) = 0;
  // Point to point (weight migration): blocking, matched by (peer, tag).
  virtual void send_bytes(const void* data, std::size_t bytes, int peer, int tag) = 0;
  virtual void receive_bytes(void* data, std::size_t bytes, int peer, int tag) = 0;
  // Sends to one peer while receiving from another (deadlock-free pairwise exchange).
  virtual void send_receive_bytes(const void* send, std::size_t send_bytes, int destination, void* receive,
                                  std::size_t receive_bytes, int source, int tag) = 0;
  virtual void barrier() = 0;
};

// ---- MPI (CPU tensors) ----
// True when this build has MPI (FUSEDMOE_WITH_MPI).
bool mpi_available();
// MPI_COMM_WORLD (initialising MPI when the caller has not). Throws Unsupported without MPI.
std::shared_ptr<Communicator> make_mpi_world_communicator();
// An existing communicator: `mpi_comm` points to an MPI_Comm the caller keeps alive.
std::shared_ptr<Communicator> make_mpi_communicator(const void* mpi_comm);
// A program's last step after an error on one rank: ends every rank of the job (MPI_Abort on MPI_COMM_WORLD
// with `exit_code`) when MPI is initialised, not finalised, and the job has more than one rank; returns
// otherwise (and always without MPI). Without it the other ranks can wait forever in a collective this rank
// never joins, and this rank in MPI_Finalize.
void abort_mpi_job(int exit_code);

// ---- NCCL (CUDA tensors) ----
// A NCCL communicator moves CUDA device buffers (device_kind() == cuda) on the caller's stream; each rank
// drives one GPU, made current by every call. Its host-side calls (all_gather_int64, all_to_all_int64,
// broadcast_bytes, send/receive, barrier) stage through a small device buffer on an internal stream and wait
// for it: they synchronise the calling thread with the GPU. Point to point matches by order per peer (NCCL
// has no tags; `tag` is ignored). One thread at a time per communicator. Several communicators of one
// process (make_nccl_communicators_single_process) must be driven from one thread each, concurrently:
// NCCL blocks a rank until its peers join, and the same holds for their destruction.

// True when this build has NCCL (FUSEDMOE_WITH_NCCL: CUDA with nccl.h and libnccl found).
bool nccl_available();
// Size of a NCCL unique id (NCCL_UNIQUE_ID_BYTES).
inline constexpr std::size_t kNcclUniqueIdBytes = 128;
// A new unique id (ncclGetUniqueId), made on one rank and handed to every rank by the caller.
std::vector<std::byte> make_nccl_unique_id();
// Rank `rank` of `size` on CUDA device `device`, joining the ranks that got the same id. Collective: every
// rank calls it at the same time (it returns when all have joined). Makes `device` the calling thread's
// current device (one process per GPU), so streams made afterwards belong to it.
std::shared_ptr<Communicator> make_nccl_communicator(std::span<const std::byte> unique_id, int rank, int size,
                                                     int device);
// The same ranks as `bootstrap` (e.g. make_mpi_world_communicator()): its rank 0 makes the id and
// broadcasts it with `bootstrap`. Collective over `bootstrap`: a rank that throws here (its device missing)
// leaves the others waiting, so check the devices first or end the job on error (abort_mpi_job).
std::shared_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, int device);
// One communicator per device of this process, rank i on devices[i] (ncclCommInitAll); for tests and
// single-process multi-GPU use (see the threading note above).
std::vector<std::shared_ptr<Communicator>> make_nccl_communicators_single_process(
    std::span<const int> devices);

}  // namespace fusedmoe
