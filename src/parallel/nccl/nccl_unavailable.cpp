// Built without NCCL: the factory functions say so.
#include "core/check.hpp"
#include "fusedmoe/communicator.hpp"

namespace fusedmoe {

namespace {
[[noreturn]] void no_nccl() {
  throw Unsupported(
      "[nccl] fusedmoe was built without NCCL: it needs the CUDA backends and NCCL (nccl.h and libnccl, "
      "e.g. libnccl-dev or the CUDA toolkit's copy; NCCL_ROOT points CMake at another one); reconfigure");
}
}  // namespace

bool nccl_available() {
  return false;
}

std::vector<std::byte> make_nccl_unique_id() {
  no_nccl();
}

std::shared_ptr<Communicator> make_nccl_communicator(std::span<const std::byte>, int, int, int) {
  no_nccl();
}

std::shared_ptr<Communicator> make_nccl_communicator(Communicator&, int) {
  no_nccl();
}

std::vector<std::shared_ptr<Communicator>> make_nccl_communicators_single_process(std::span<const int>) {
  no_nccl();
}

}  // namespace fusedmoe
