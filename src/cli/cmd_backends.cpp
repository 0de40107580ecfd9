// `fusedmoe backends`: every candidate for a config on this machine: selected / supported / skipped: reason.
#include <iostream>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "cli/problem_options.hpp"
#include "fusedmoe/error.hpp"
#include "fusedmoe/oracle.hpp"

namespace fusedmoe::cli {

void add_backends_command(CLI::App& app) {
  auto options = std::make_shared<ProblemOptions>();
  auto backend = std::make_shared<std::string>();
  CLI::App* command =
      app.add_subcommand("backends", "List every backend for a configuration and why it is (not) chosen");
  options->add_to(*command);
  command->add_option("--backend", *backend, "Force a backend id (as FUSEDMOE_BACKEND does)");
  command->callback([options, backend] {
    const MoeConfig config = options->config();
    const Platform platform = Platform::detect(config.device);
    Selection selection;
    std::string selection_error;
    try {
      selection = select_backend(config, platform, backend->empty() ? std::nullopt : std::optional(*backend));
    } catch (const Error& error) {
      selection.considered = evaluate_backends(config, platform);
      selection_error = error.what();
    }
    if (options->json) {
      for (const Candidate& candidate : selection.considered) {
        const bool chosen = candidate.backend == selection.backend;
        print_json_line({{"backend", candidate.backend->id},
                         {"kind", to_string(candidate.backend->kind)},
                         {"device", to_string(config.device)},
                         {"status", chosen                 ? "selected"
                                    : candidate.support.ok ? "supported"
                                                           : "skipped"},
                         {"reason", candidate.support.reason}});
      }
    } else {
      std::cout << "platform: " << platform.describe() << "\n"
                << "config:   " << config.describe() << ", dispatch " << to_string(config.parallel.dispatch)
                << " (" << to_string(dispatch_format(config)) << " format)\n"
                << "candidates, best first:\n"
                << selection.describe();
      if (!selection_error.empty()) std::cout << "no selection: " << selection_error << "\n";
    }
    if (!selection_error.empty()) exit_status() = 1;
  });
}

}  // namespace fusedmoe::cli
