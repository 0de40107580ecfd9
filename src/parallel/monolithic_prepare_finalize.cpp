#include "parallel/prepare_finalize_local.hpp"

namespace fusedmoe {

PrepareFinalizeMonolithic::Prepared LocalMonolithicPrepareFinalize::prepare(const TensorView& hidden,
                                                                            const TensorView& router_logits,
                                                                            WorkspaceArena&,
                                                                            const ExecContext&) {
  return {hidden, router_logits};
}

void LocalMonolithicPrepareFinalize::finalize(const TensorView& expert_out, const TensorView& out,
                                              const ExecContext& context) {
  if (expert_out.data() != out.data()) copy_tensor(expert_out, out, context);
}

}  // namespace fusedmoe
