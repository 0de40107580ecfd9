#include "cli/ep_communicator.hpp"

#include <cstdlib>

#include "cli/device_option.hpp"
#include "core/check.hpp"

namespace fusedmoe::cli {

int local_rank(int world_rank) {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"}) {
    if (const char* value = std::getenv(name)) return std::atoi(value);
  }
  return world_rank;
}

std::shared_ptr<Communicator> make_ep_communicator(const std::shared_ptr<Communicator>& world, Device& device,
                                                   std::string_view device_option, std::string_view command) {
  if (!device.is_cuda()) return world;
  if (device_option == "cuda") device.index = local_rank(world->rank());
  require_device_present(device, str_cat(command, " rank ", world->rank()));
  return make_nccl_communicator(*world, device.index);
}

}  // namespace fusedmoe::cli
