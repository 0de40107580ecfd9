#include "core/check.hpp"
#include "core/threading.hpp"
#include "kernel/weight_and_reduce.hpp"
#include "parallel/prepare_finalize_local.hpp"

namespace fusedmoe {

ExpertsProblem LocalPrepareFinalize::problem(std::int64_t num_tokens, const MoeConfig& config) const {
  return standard_problem(num_tokens, config);
}

std::size_t LocalPrepareFinalize::workspace_bytes(std::int64_t, const MoeConfig&) const {
  return 0;
}

DispatchedTokens LocalPrepareFinalize::prepare(const TensorView& hidden, const TensorView& topk_ids,
                                               const TensorView& topk_weights, const TensorView& expert_map,
                                               WorkspaceArena&, const ExecContext&) {
  DispatchedTokens dispatched;
  dispatched.format = ActivationFormat::standard;
  dispatched.hidden = hidden;
  dispatched.topk_ids = topk_ids;
  dispatched.topk_weights = topk_weights;
  dispatched.expert_map = expert_map;
  return dispatched;
}

void LocalPrepareFinalize::finalize(const DispatchedTokens& dispatched, const TensorView& expert_out,
                                    WeightAndReduce policy, const TensorView& out, WorkspaceArena&,
                                    const ExecContext& context) {
  if (policy == WeightAndReduce::by_experts) {
    // On a CUDA device this is an asynchronous device-to-device copy on context.stream.
    if (expert_out.data() != out.data()) copy_tensor(expert_out, out, context);
    return;
  }
  FUSEDMOE_CHECK(out.device().is_cpu(), "[local] weighting and reducing in finalize (Experts of policy ",
                 "by_finalize) runs on the CPU only; out is on ", to_string(out.device()));
  weight_and_reduce_standard(expert_out, dispatched.topk_weights, out, resolve_num_threads(context));
}

}  // namespace fusedmoe
