// Communicator: the collectives expert parallelism needs, over an existing library (MPI for CPU
// tensors, NCCL for GPU tensors). Every rank must call the collectives in the same order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

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

// True when this build has MPI (FUSEDMOE_WITH_MPI).
bool mpi_available();
// MPI_COMM_WORLD (initialising MPI when the caller has not). Throws Unsupported without MPI.
std::shared_ptr<Communicator> make_mpi_world_communicator();
// An existing communicator: `mpi_comm` points to an MPI_Comm the caller keeps alive.
std::shared_ptr<Communicator> make_mpi_communicator(const void* mpi_comm);

}  // namespace fusedmoe
