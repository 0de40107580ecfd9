// What the library grouped-GEMM backends (cuda_cutlass_grouped, cuda_cublas_grouped) share: the supports()
// questions they answer alike, the workspace of the steps around their GEMMs, and those steps (sort the
// (token, slot) pairs by expert, gather, activation, weighted reduce; kernels/grouped_gemm_ops.hpp).
// Plain C++: no CUDA headers.
#pragma once

#include <cstdint>
#include <string_view>

#include "fusedmoe/kernel.hpp"
#include "fusedmoe/oracle.hpp"

namespace fusedmoe::cuda {

// CUDA device, bf16 weights and activations, SiLU or GELU, the standard format (local dispatch, or the
// allgather / all2all expert-parallel dispatches with the expert map). The caller adds its own device and
// shape questions.
Support grouped_pipeline_supports(const MoeConfig& config, const Platform& platform, ActivationFormat format);

// Every buffer is sized for all M * k pairs (how many are local is known only on the device).
struct GroupedBuffers {
  std::int64_t num_tokens = 0, num_pairs = 0;
  int top_k = 0;
  std::int32_t* tile_counts = nullptr;   // [sort_tiles(pairs), E_local]
  std::int64_t* offsets = nullptr;       // [E_local + 1]
  std::int32_t* sorted_pairs = nullptr;  // [pairs]
  std::int32_t* pair_row = nullptr;      // [pairs]
  void* a_sorted = nullptr;              // [pairs, H] bf16: GEMM1's A
  void* c1 = nullptr;                    // [pairs, 2I] bf16: GEMM1's output
  void* intermediate = nullptr;          // [pairs, I] bf16: GEMM2's A
  void* c2 = nullptr;                    // [pairs, H] bf16: GEMM2's output (a_sorted's memory, free by then)
};

// The canonical bf16 w13 [E_local, 2I, H] and w2 [E_local, H, I] (on the CPU or on the config's device)
// copied to the config's device once, contiguous and 256-byte aligned; waits until the copies are done.
// `component` names the backend in errors.
struct CanonicalDeviceWeights {
  Tensor w13, w2;
};
CanonicalDeviceWeights copy_canonical_weights(std::string_view component, const Tensor& w13, const Tensor& w2,
                                              const MoeConfig& config);

std::size_t grouped_buffers_bytes(const ExpertsProblem& problem);
GroupedBuffers take_grouped_buffers(WorkspaceArena& workspace, std::int64_t num_tokens, int top_k,
                                    std::int64_t num_local_experts, std::int64_t hidden_size,
                                    std::int64_t intermediate_size);

// Steps 1-2: offsets, sorted pairs and pair rows, then a_sorted. `num_experts` is the global E.
void group_rows_by_expert(const DispatchedTokens& dispatched, const GroupedBuffers& buffers, int num_experts,
                          int num_local_experts, StreamHandle stream);
// Step 4: intermediate = act(gate) * up from c1.
void apply_gated_activation(const GroupedBuffers& buffers, std::int64_t intermediate_size,
                            int num_local_experts, Activation activation, StreamHandle stream);
// Step 6: expert_out [M, H] = the weighted sum over slots of c2's rows.
void reduce_to_tokens(const DispatchedTokens& dispatched, const GroupedBuffers& buffers,
                      std::int64_t hidden_size, const TensorView& expert_out, StreamHandle stream);

}  // namespace fusedmoe::cuda
