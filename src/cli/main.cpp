// fusedmoe: the command-line tool. Library exceptions become messages and exit codes here, and only here.
#include <iostream>
#include <new>

#include "cli/commands.hpp"
#include "fusedmoe/communicator.hpp"
#include "fusedmoe/error.hpp"
#include "fusedmoe/version.hpp"

namespace fusedmoe::cli {
int& exit_status() {
  static int status = 0;
  return status;
}
}  // namespace fusedmoe::cli

namespace {
// After an error under `mpirun -np N` (N > 1) one rank's failure ends the job: the other ranks may be waiting
// for this one in a collective (the NCCL id's broadcast, the dispatch), and would wait forever.
int end_job(int exit_code) {
  fusedmoe::abort_mpi_job(exit_code);
  return exit_code;
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"fusedmoe: Mixture-of-Experts layers for LLM inference, on CPUs and NVIDIA GPUs"};
  app.set_version_flag("--version", fusedmoe::version_string());
  app.require_subcommand(1);
  fusedmoe::cli::add_backends_command(app);
  fusedmoe::cli::add_run_command(app);
  fusedmoe::cli::add_check_command(app);
  fusedmoe::cli::add_eplb_command(app);
  fusedmoe::cli::add_inspect_command(app);
  fusedmoe::cli::add_bench_command(app);
  fusedmoe::cli::add_tune_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  } catch (const fusedmoe::Error& error) {
    std::cerr << "fusedmoe: error (" << fusedmoe::to_string(error.kind()) << "): " << error.what()
              << std::endl;
    return end_job(error.kind() == fusedmoe::ErrorKind::invalid_argument ? 2 : 3);
  } catch (const std::bad_alloc&) {
    std::cerr << "fusedmoe: error: out of memory: the sizes given need more memory than this machine has "
                 "(fewer tokens, experts or layers)"
              << std::endl;
    return end_job(3);
  } catch (const std::exception& error) {
    std::cerr << "fusedmoe: error: " << error.what() << std::endl;
    return end_job(3);
  }
  return fusedmoe::cli::exit_status();
}
