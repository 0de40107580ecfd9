// Built without MPI: the factory functions say so.
#include "core/check.hpp"
#include "fusedmoe/communicator.hpp"

namespace fusedmoe {

bool mpi_available() {
  return false;
}

std::shared_ptr<Communicator> make_mpi_world_communicator() {
  throw Unsupported(
      "[mpi] fusedmoe was built without MPI: install libopenmpi-dev (scripts/setup.sh) and reconfigure");
}

std::shared_ptr<Communicator> make_mpi_communicator(const void*) {
  return make_mpi_world_communicator();
}

void abort_mpi_job(int) {}

}  // namespace fusedmoe
