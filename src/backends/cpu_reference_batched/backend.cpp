// cpu_reference_batched: the reference Experts for the batched format [E_local, capacity, H]:
// unweighted expert outputs per slot, weighting and reduction left to finalize.
#include <algorithm>

#include "backends/backends.hpp"
#include "backends/cpu_reference/expert_mlp.hpp"
#include "backends/cpu_reference/experts.hpp"
#include "core/threading.hpp"

namespace fusedmoe {

namespace {

class ReferenceBatchedExperts final : public ExpertsModular {
 public:
  explicit ReferenceBatchedExperts(const MoeConfig& config) : config_(config) {}
  std::string_view name() const override { return "cpu_reference_batched"; }
  ActivationFormat format() const override { return ActivationFormat::batched; }
  WeightAndReduce weight_and_reduce() const override { return WeightAndReduce::by_finalize; }
  std::size_t workspace_bytes(const ExpertsProblem& problem) const override {
    return WorkspaceArena::bytes_for(
        DType::fp32, kReferenceMaxThreads * (2 * problem.hidden_size + problem.intermediate_size));
  }

  void apply(const DispatchedTokens& dispatched, const ExpertWeights& weights, const TensorView& expert_out,
             WorkspaceArena& workspace, const ExecContext& context) override {
    const ExpertMlp mlp(as_canonical(weights, name()), config_.activation, config_.act_dtype);
    const std::int64_t hidden_size = config_.hidden_size;
    const std::int64_t intermediate_size = config_.intermediate_size;
    const std::int64_t num_local_experts = dispatched.hidden.size(0);
    const std::int64_t capacity = dispatched.hidden.size(1);
    const auto* counts = dispatched.expert_num_tokens.data_as<const std::int32_t>();
    const TensorView slots = dispatched.hidden.reshape({num_local_experts * capacity, hidden_size});
    const TensorView out_slots = expert_out.reshape({num_local_experts * capacity, hidden_size});
    const int num_threads = std::min(resolve_num_threads(context), kReferenceMaxThreads);
    const std::int64_t per_thread = 2 * hidden_size + intermediate_size;
    float* scratch = workspace.take(DType::fp32, {kReferenceMaxThreads * per_thread}).data_as<float>();

    parallel_for_indexed(num_local_experts * capacity, num_threads,
                         [&](std::int64_t begin, std::int64_t end, int thread) {
                           float* mine = scratch + thread * per_thread;
                           const std::span<float> x(mine, hidden_size), y(mine + hidden_size, hidden_size),
                               intermediate(mine + 2 * hidden_size, intermediate_size);
                           for (std::int64_t index = begin; index < end; ++index) {
                             const std::int64_t expert = index / capacity;
                             if (index % capacity >= counts[expert]) continue;  // past this expert's tokens
                             load_row(slots, index, x);
                             mlp.run(expert, x, y, intermediate);
                             store_row(out_slots, index, y);
                           }
                         });
  }

 private:
  MoeConfig config_;
};

}  // namespace

BackendInfo cpu_reference_batched_backend() {
  BackendInfo info;
  info.id = "cpu_reference_batched";
  info.device_kind = DeviceKind::cpu;
  info.kind = ExpertsKind::modular;
  info.supports = [](const MoeConfig& config, const Platform&, ActivationFormat format) -> Support {
    if (Support device = reference_supports_device(config); !device) return device;
    if (format != ActivationFormat::batched) {
      return Support::no("consumes the batched format; the dispatch delivers " +
                         std::string(to_string(format)));
    }
    return Support::yes();
  };
  info.convert_weights = reference_convert_weights;
  info.make_experts = [](const MoeConfig& config) {
    return std::make_unique<ReferenceBatchedExperts>(config);
  };
  return info;
}

}  // namespace fusedmoe
