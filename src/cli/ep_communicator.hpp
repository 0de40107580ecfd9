// The communicator of an expert-parallel command (`mpirun -np N fusedmoe run|check --ep N`): MPI between
// the ranks for CPU tensors; NCCL, made from the MPI ranks, for a GPU device.
#pragma once

#include <memory>
#include <string_view>

#include "fusedmoe/communicator.hpp"
#include "fusedmoe/tensor.hpp"

namespace fusedmoe::cli {

// The rank among the processes of this node (Open MPI, MPICH, Slurm), else the world rank.
int local_rank(int world_rank);

// The ranks talk over `world` (MPI) on a CPU; on a GPU over NCCL, each rank on the GPU of its local rank
// when `device_option` names no index ("cuda"), or on the GPU it names on every rank ("cuda:N", for
// per-rank CUDA_VISIBLE_DEVICES). `device` is updated to the GPU chosen; a GPU that is not there is refused,
// naming `command` and the rank.
std::shared_ptr<Communicator> make_ep_communicator(const std::shared_ptr<Communicator>& world, Device& device,
                                                   std::string_view device_option, std::string_view command);

}  // namespace fusedmoe::cli
