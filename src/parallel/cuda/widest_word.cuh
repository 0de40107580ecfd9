// Row copies move whole rows as the widest word every address and the row length are aligned to (16 bytes
// down to 1): one helper so the three row-moving launchers pick it the same way.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace fusedmoe::cuda {

// Calls launch(Word{}) with the widest of uint4, uint64, uint32, uint16, uint8 that divides `alignment` (the
// OR of the addresses and the row length in bytes).
template <class Launch>
void with_widest_word(std::uintptr_t alignment, Launch&& launch) {
  if (alignment % 16 == 0) {
    launch(uint4{});
  } else if (alignment % 8 == 0) {
    launch(std::uint64_t{});
  } else if (alignment % 4 == 0) {
    launch(std::uint32_t{});
  } else if (alignment % 2 == 0) {
    launch(std::uint16_t{});
  } else {
    launch(std::uint8_t{});
  }
}

}  // namespace fusedmoe::cuda
