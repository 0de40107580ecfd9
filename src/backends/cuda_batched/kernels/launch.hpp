// cuda_batched's launchers (kernels/batched_layout.cuh): plain C++ entry points (no CUDA headers) that
// experts.cpp calls; each launches on the given stream of the current device and checks the launch. Every
// pointer is a device pointer; counts are clamped to [0, capacity] on the device.
#pragma once

#include <cstdint>

#include "fusedmoe/device.hpp"

namespace fusedmoe::cuda_batched {

// Sorted ids, per-block experts and the unit weights of the valid slots (see batched_layout.cuh).
struct BatchedAlignLaunch {
  const std::int32_t* counts;  // [E_local]
  std::int64_t num_local_experts;
  std::int64_t capacity;
  int block_m;
  std::int64_t blocks_per_expert;
  std::int32_t* sorted_ids;    // [E_local * blocks_per_expert * block_m]
  std::int32_t* block_expert;  // [E_local * blocks_per_expert]
  float* unit_weights;         // [E_local * capacity]
};
void launch_batched_align(const BatchedAlignLaunch& args, StreamHandle stream);

// Valid rows of hidden [E_local * capacity, columns] bf16 -> padded [E_local * capacity, pitch], zero padded.
void launch_batched_pad_rows(const void* hidden, const std::int32_t* counts, std::int64_t num_local_experts,
                             std::int64_t capacity, std::int64_t columns, void* padded, std::int64_t pitch,
                             StreamHandle stream);

// Valid rows of rows [E_local * capacity, pitch] bf16 -> out [E_local * capacity, columns].
void launch_batched_copy_out(const void* rows, std::int64_t pitch, const std::int32_t* counts,
                             std::int64_t num_local_experts, std::int64_t capacity, std::int64_t columns,
                             void* out, StreamHandle stream);

}  // namespace fusedmoe::cuda_batched
