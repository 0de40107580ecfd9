// cpu_reference_monolithic: routes inside itself (router logits in, output out) with the reference
// arithmetic; the model for low-latency monolithic paths and the test of the monolithic pairing.
#include <algorithm>

#include "backends/backends.hpp"
#include "backends/cpu_reference/expert_mlp.hpp"
#include "backends/cpu_reference/experts.hpp"
#include "core/elements.hpp"
#include "core/threading.hpp"
#include "fusedmoe/router.hpp"

namespace fusedmoe {

namespace {

class ReferenceMonolithicExperts final : public ExpertsMonolithic {
 public:
  explicit ReferenceMonolithicExperts(const MoeConfig& config) : config_(config) {}
  std::string_view name() const override { return "cpu_reference_monolithic"; }
  std::size_t workspace_bytes(std::int64_t num_tokens) const override {
    const std::int64_t top_k = config_.routing.top_k;
    return WorkspaceArena::bytes_for(DType::int32, num_tokens * top_k) +
           WorkspaceArena::bytes_for(DType::fp32, num_tokens * top_k) +
           WorkspaceArena::bytes_for(
               DType::fp32, kReferenceMaxThreads * (3 * config_.hidden_size + config_.intermediate_size));
  }

  void apply(const TensorView& hidden, const TensorView& router_logits, const TensorView& correction_bias,
             const ExpertWeights& weights, const TensorView& out, WorkspaceArena& workspace,
             const ExecContext& context) override {
    const std::int64_t num_tokens = hidden.size(0);
    const std::int64_t top_k = config_.routing.top_k;
    const TensorView ids = workspace.take(DType::int32, {num_tokens, top_k});
    const TensorView routing_weights = workspace.take(DType::fp32, {num_tokens, top_k});
    route(router_logits, config_.routing,
          config_.routing.use_correction_bias ? correction_bias : TensorView{}, ids, routing_weights,
          context);

    const ExpertMlp mlp(as_canonical(weights, name()), config_.activation, config_.act_dtype);
    const std::int64_t hidden_size = config_.hidden_size;
    const std::int64_t intermediate_size = config_.intermediate_size;
    const bool weight_on_input = applies_weight_on_input(config_.routing.recipe);
    const int num_threads = std::min(resolve_num_threads(context), kReferenceMaxThreads);
    const std::int64_t per_thread = 3 * hidden_size + intermediate_size;
    float* scratch = workspace.take(DType::fp32, {kReferenceMaxThreads * per_thread}).data_as<float>();
    parallel_for_indexed(num_tokens, num_threads, [&](std::int64_t begin, std::int64_t end, int thread) {
      float* mine = scratch + thread * per_thread;
      const std::span<float> x(mine, hidden_size), y(mine + hidden_size, hidden_size),
          sum(mine + 2 * hidden_size, hidden_size), intermediate(mine + 3 * hidden_size, intermediate_size);
      for (std::int64_t token = begin; token < end; ++token) {
        load_row(hidden, token, x);
        std::fill(sum.begin(), sum.end(), 0.0f);
        for (std::int64_t slot = 0; slot < top_k; ++slot) {
          const std::int32_t expert = ids.data_as<const std::int32_t>()[token * top_k + slot];
          const float weight = routing_weights.data_as<const float>()[token * top_k + slot];
          if (weight_on_input) {
            // Llama-4: the weight scales the input (rounded to the activation dtype, as the modular path
            // does).
            for (float& value : x) value = round_to(config_.act_dtype, weight * value);
            mlp.run(expert, x, y, intermediate);
            for (std::int64_t column = 0; column < hidden_size; ++column) sum[column] += y[column];
          } else {
            mlp.run(expert, x, y, intermediate);
            for (std::int64_t column = 0; column < hidden_size; ++column) sum[column] += weight * y[column];
          }
        }
        store_row(out, token, sum);
      }
    });
  }

 private:
  MoeConfig config_;
};

}  // namespace

BackendInfo cpu_reference_monolithic_backend() {
  BackendInfo info;
  info.id = "cpu_reference_monolithic";
  info.device_kind = DeviceKind::cpu;
  info.kind = ExpertsKind::monolithic;
  info.supports = [](const MoeConfig& config, const Platform&, ActivationFormat format) -> Support {
    if (Support device = reference_supports_device(config); !device) return device;
    if (format != ActivationFormat::standard) {
      return Support::no("routes inside itself and takes the standard format; the dispatch delivers " +
                         std::string(to_string(format)));
    }
    if (is_expert_parallel(config.parallel.dispatch)) {
      return Support::no("routes inside itself on one device; dispatch is " +
                         std::string(to_string(config.parallel.dispatch)));
    }
    return Support::yes();
  };
  info.convert_weights = reference_convert_weights;
  info.make_experts = [](const MoeConfig& config) {
    return std::make_unique<ReferenceMonolithicExperts>(config);
  };
  return info;
}

}  // namespace fusedmoe
