// The one place that decides which PrepareFinalize a configuration gets.
#include "core/check.hpp"
#include "parallel/prepare_finalize_ep.hpp"
#include "parallel/prepare_finalize_local.hpp"

namespace fusedmoe {

ActivationFormat dispatch_format(const MoeConfig& config) {
  switch (config.parallel.dispatch) {
    case DispatchMode::local:
      return ActivationFormat::standard;
    case DispatchMode::local_batched:
      return ActivationFormat::batched;
    case DispatchMode::allgather:
    case DispatchMode::all2all:
      return ActivationFormat::standard;
    case DispatchMode::all2all_batched:
      return ActivationFormat::batched;
  }
  return ActivationFormat::standard;
}

std::unique_ptr<PrepareFinalizeModular> make_prepare_finalize(const MoeConfig& config,
                                                              std::shared_ptr<Communicator> communicator) {
  switch (config.parallel.dispatch) {
    case DispatchMode::local:
      return std::make_unique<LocalPrepareFinalize>();
    case DispatchMode::local_batched:
      return std::make_unique<LocalBatchedPrepareFinalize>(config);
    case DispatchMode::allgather:
      return std::make_unique<AllGatherPrepareFinalize>(config, std::move(communicator));
    case DispatchMode::all2all:
      return std::make_unique<AllToAllPrepareFinalize>(config, std::move(communicator));
    case DispatchMode::all2all_batched:
      return std::make_unique<BatchedAllToAllPrepareFinalize>(config, std::move(communicator));
  }
  throw InternalError("[prepare_finalize] unhandled dispatch mode");
}

std::unique_ptr<PrepareFinalizeMonolithic> make_prepare_finalize_monolithic(const MoeConfig& config) {
  FUSEDMOE_CHECK(config.parallel.ep_size == 1, "[prepare_finalize] ep_size = ", config.parallel.ep_size,
                 ": monolithic Experts run on one device only; expected 1");
  return std::make_unique<LocalMonolithicPrepareFinalize>();
}

}  // namespace fusedmoe
