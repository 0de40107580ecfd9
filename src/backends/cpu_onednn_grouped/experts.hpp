// cpu_onednn_grouped: the expert GEMMs through oneDNN's matmul primitive (weights prepacked once into
// the layout oneDNN prefers, primitives cached per row count), with fusedmoe's own gather, gated
// activation and top-k reduction around them: the "grouped GEMM" strategy of CPU MoE paths.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "backends/cpu_onednn_grouped/onednn_matmul.hpp"
#include "fusedmoe/kernel.hpp"
#include "fusedmoe/oracle.hpp"

namespace fusedmoe {

// The weights as oneDNN wants them: per local expert, w13^T [H, 2I] and w2^T [I, H] reordered into
// the matmul's preferred (blocked) bf16 layout.
class OneDnnGroupedWeights final : public ExpertWeights {
 public:
  OneDnnGroupedWeights(std::int64_t num_local_experts, std::int64_t hidden_size,
                       std::int64_t intermediate_size);
  std::int64_t num_local_experts, hidden_size, intermediate_size;
  dnnl::memory::desc w13_desc;  // [K = H, N = 2I]: gate columns [0, I), up columns [I, 2I)
  dnnl::memory::desc w2_desc;   // [K = I, N = H]
  Tensor w13;                   // uint8 [E_local, w13_desc.get_size()]
  Tensor w2;                    // uint8 [E_local, w2_desc.get_size()]
  const void* w13_of(std::int64_t expert) const;
  const void* w2_of(std::int64_t expert) const;
};

// Reorders canonical bf16 weights ([E_local, 2I, H] and [E_local, H, I]) once.
std::shared_ptr<const ExpertWeights> onednn_grouped_convert_weights(const Tensor& w13, const Tensor& w2,
                                                                    const MoeConfig& config);

class OneDnnGroupedExperts final : public ExpertsModular {
 public:
  explicit OneDnnGroupedExperts(const MoeConfig& config);
  std::string_view name() const override { return kOneDnnGroupedId; }
  ActivationFormat format() const override { return ActivationFormat::standard; }
  WeightAndReduce weight_and_reduce() const override { return WeightAndReduce::by_experts; }
  std::size_t workspace_bytes(const ExpertsProblem& problem) const override;
  void apply(const DispatchedTokens& dispatched, const ExpertWeights& weights, const TensorView& expert_out,
             WorkspaceArena& workspace, const ExecContext& context) override;

 private:
  struct Layout;
  struct Task;
  struct SlotBuffers;
  struct Buffers;
  Layout layout_for(std::int64_t num_tokens, int num_slots) const;
  // Tokens [begin, end) of the dispatched batch: sort by expert, run the tasks, reduce over k.
  void run_block(const DispatchedTokens& dispatched, const OneDnnGroupedWeights& weights, std::int64_t begin,
                 std::int64_t end, const TensorView& expert_out, const Layout& layout, const Buffers& buffers,
                 int num_threads);
  // Gather -> GEMM1 -> activation -> GEMM2 for one piece of one expert's rows.
  void run_task(const Task& task, const OneDnnGroupedWeights& weights, const TensorView& tokens,
                std::int64_t begin, const Buffers& buffers, const SlotBuffers& slot, int gemm_threads,
                std::size_t scratchpad_capacity, const dnnl::stream& stream);

  MoeConfig config_;
  MatmulCache gemm1_;                  // [m, H] x [H, 2I]
  MatmulCache gemm2_;                  // [m, I] x [I, H]
  std::vector<dnnl::stream> streams_;  // one per thread that executes primitives
  std::size_t slot_scratchpad_ = 0;    // user scratchpad bytes of a single-threaded primitive, at most
};

}  // namespace fusedmoe
