// `fusedmoe check`: every supported backend against the fp64 reference on one shape.
#include <algorithm>
#include <iomanip>
#include <iostream>
#include <vector>

#include "check/compare.hpp"
#include "check/fp64_reference.hpp"
#include "core/random.hpp"
#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "cli/problem_options.hpp"
#include "check/random_model.hpp"
#include "fusedmoe/error.hpp"
#include "fusedmoe/layer.hpp"

namespace fusedmoe::cli {

namespace {
struct CheckOptions {
  ProblemOptions problem;
  std::vector<std::string> backends;  // empty: every supported one
};

bool same(const TensorView& a, const TensorView& b) {
  return a.nbytes() == b.nbytes() && std::equal(a.data_as<const char>(), a.data_as<const char>() + a.nbytes(),
                                                b.data_as<const char>());
}

void check(CheckOptions& options, CLI::App& command) {
  const bool dispatch_given = command.count("--dispatch") > 0;
  const MoeConfig base_config = options.problem.config();
  const std::int64_t tokens = options.problem.tokens;
  const MoeWeights weights = random_weights(base_config, options.problem.seed);
  const Tensor hidden = random_hidden(base_config, tokens, options.problem.seed);
  const double tolerance = tolerance_for(base_config.act_dtype);
  const ExecContext context{.num_threads = options.problem.threads};
  const Platform platform = Platform::detect(base_config.device);

  std::vector<DispatchMode> modes = {base_config.parallel.dispatch};
  if (!dispatch_given) modes = {DispatchMode::local, DispatchMode::local_batched};
  if (!options.problem.json) {
    std::cout << "config: " << base_config.describe() << ", tokens " << tokens << ", tolerance " << tolerance
              << " (relative error against fp64)\n";
  }
  int checked = 0, failed = 0;
  Tensor reference_ids, reference_weights;
  std::vector<double> reference;
  for (DispatchMode mode : modes) {
    MoeConfig config = base_config;
    config.parallel.dispatch = mode;
    for (const Candidate& candidate : evaluate_backends(config, platform)) {
      const std::string& id = candidate.backend->id;
      if (!options.backends.empty() && std::find(options.backends.begin(), options.backends.end(), id) == options.backends.end()) {
        continue;
      }
      if (!candidate.support.ok) {
        if (!options.problem.json && !options.backends.empty()) {
          std::cout << "  " << id << " [" << to_string(mode) << "]: skipped: " << candidate.support.reason << "\n";
        }
        continue;
      }
      FusedMoeLayer layer(config, LayerOptions{.backend = id, .shared_experts_backend = {}});
      layer.set_weights(weights);
      layer.finalize_weights(platform);
      const Tensor out = Tensor::empty(config.act_dtype, {tokens, config.hidden_size});
      fill_nan(out);
      const Tensor ids = Tensor::empty(DType::int32, {tokens, config.routing.top_k});
      const Tensor routing_weights = Tensor::empty(DType::fp32, {tokens, config.routing.top_k});
      layer.forward(hidden, out, context, RoutingOutputs{ids, routing_weights});
      if (reference.empty() || !same(ids, reference_ids) || !same(routing_weights, reference_weights)) {
        reference = fp64_moe_reference(config, weights, hidden, ids, routing_weights);
        reference_ids = ids.clone();
        reference_weights = routing_weights.clone();
      }
      const ErrorStats stats = compare_to_reference(out, reference);
      const bool ok = stats.relative_error <= tolerance;
      ++checked;
      failed += ok ? 0 : 1;
      if (options.problem.json) {
        print_json_line({{"backend", id},
                         {"dispatch", to_string(mode)},
                         {"tokens", tokens},
                         {"dtype", to_string(config.act_dtype)},
                         {"max_abs_error", stats.max_abs_error},
                         {"relative_error", stats.relative_error},
                         {"tolerance", tolerance},
                         {"passed", ok}});
      } else {
        std::cout << "  " << std::left << std::setw(26) << id << " [" << to_string(mode) << "]  max abs "
                  << std::scientific << std::setprecision(3) << stats.max_abs_error << "  relative "
                  << stats.relative_error << "  " << (ok ? "PASS" : "FAIL") << "\n"
                  << std::defaultfloat;
      }
    }
  }
  if (checked == 0) {
    throw Unsupported("[check] no backend supports this configuration here (see `fusedmoe backends`)");
  }
  if (!options.problem.json) std::cout << checked - failed << " of " << checked << " passed\n";
  if (failed > 0) exit_status() = 1;
}
}  // namespace

void add_check_command(CLI::App& app) {
  auto options = std::make_shared<CheckOptions>();
  CLI::App* command =
      app.add_subcommand("check", "Check every supported backend against an fp64 reference on one shape");
  options->problem.add_to(*command);
  command->add_option("--backend", options->backends, "Only these backend ids (repeatable)");
  command->callback([options, command] { check(*options, *command); });
}

}  // namespace fusedmoe::cli
