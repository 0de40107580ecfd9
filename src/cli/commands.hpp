// Each subcommand registers itself on the app and runs from there.
#pragma once

#include <CLI/CLI.hpp>

namespace fusedmoe::cli {

void add_backends_command(CLI::App& app);
void add_run_command(CLI::App& app);
void add_check_command(CLI::App& app);
void add_eplb_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_tune_command(CLI::App& app);

// Exit status a command asks for (0 = success); commands set it, main returns it.
int& exit_status();

}  // namespace fusedmoe::cli
