// `fusedmoe run`: one forward of a built-in preset with deterministic random weights.
#include <algorithm>
#include <chrono>
#include <iomanip>
#include <iostream>
#include <vector>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "cli/problem_options.hpp"
#include "check/random_model.hpp"
#include "fusedmoe/layer.hpp"

namespace fusedmoe::cli {

namespace {
struct RunOptions {
  ProblemOptions problem;
  std::string backend;
  int repeats = 3;
};

void run(const RunOptions& options) {
  const MoeConfig config = options.problem.config();
  LayerOptions layer_options;
  if (!options.backend.empty()) layer_options.backend = options.backend;
  FusedMoeLayer layer(config, layer_options);
  layer.set_weights(random_weights(config, options.problem.seed));
  layer.finalize_weights();
  const std::int64_t tokens = options.problem.tokens;
  const Tensor hidden = random_hidden(config, tokens, options.problem.seed);
  const Tensor out = Tensor::empty(config.act_dtype, {tokens, config.hidden_size});
  const ExecContext context{.num_threads = options.problem.threads};
  layer.reserve(tokens);

  std::vector<double> times_ms;
  for (int repeat = 0; repeat <= options.repeats; ++repeat) {  // the first run warms up
    const auto start = std::chrono::steady_clock::now();
    layer.forward(hidden, out, context);
    const auto stop = std::chrono::steady_clock::now();
    if (repeat > 0 || options.repeats == 0) {
      times_ms.push_back(std::chrono::duration<double, std::milli>(stop - start).count());
    }
  }
  std::sort(times_ms.begin(), times_ms.end());
  const double median_ms = times_ms[times_ms.size() / 2];
  const Checksum sums = checksum(out);
  const std::string& backend = layer.selection().backend->id;
  if (options.problem.json) {
    print_json_line({{"preset", options.problem.preset},
                     {"backend", backend},
                     {"device", to_string(config.device)},
                     {"tokens", tokens},
                     {"hidden", config.hidden_size},
                     {"intermediate", config.intermediate_size},
                     {"experts", config.num_experts},
                     {"topk", config.routing.top_k},
                     {"dtype", to_string(config.act_dtype)},
                     {"time_ms", median_ms},
                     {"checksum", sums.sum},
                     {"abs_checksum", sums.abs_sum}});
    return;
  }
  std::cout << "preset:   " << options.problem.preset << "\n"
            << "backend:  " << backend << "\n"
            << "config:   " << config.describe() << "\n"
            << "shapes:   hidden [" << tokens << ", " << config.hidden_size << "] -> out [" << tokens << ", "
            << config.hidden_size << "]\n"
            << "time:     " << std::fixed << std::setprecision(3) << median_ms << " ms (median of "
            << times_ms.size() << " after a warm-up)\n"
            << std::setprecision(6) << "checksum: sum " << sums.sum << ", sum|x| " << sums.abs_sum << "\n";
}
}  // namespace

void add_run_command(CLI::App& app) {
  auto options = std::make_shared<RunOptions>();
  CLI::App* command = app.add_subcommand("run", "Run one MoE forward on a built-in preset with random weights");
  options->problem.add_to(*command);
  command->add_option("--backend", options->backend, "Force a backend id (else FUSEDMOE_BACKEND, else the oracle)");
  command->add_option("--repeats", options->repeats, "Timed repetitions after one warm-up")->capture_default_str();
  command->callback([options] { run(*options); });
}

}  // namespace fusedmoe::cli
