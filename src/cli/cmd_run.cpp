// `fusedmoe run`: one forward of a built-in preset with deterministic random weights.
#include <algorithm>
#include <bit>
#include <chrono>
#include <iomanip>
#include <iostream>
#include <vector>

#include "check/random_model.hpp"
#include "cli/commands.hpp"
#include "cli/device_option.hpp"
#include "cli/device_tensors.hpp"
#include "cli/ep_communicator.hpp"
#include "cli/option_checks.hpp"
#include "cli/output.hpp"
#include "cli/problem_options.hpp"
#include "cli/validators.hpp"
#include "core/check.hpp"
#include "fusedmoe/communicator.hpp"
#include "fusedmoe/hf.hpp"
#include "fusedmoe/layer.hpp"
#include "fusedmoe/safetensors.hpp"
#include "parallel/expert_map.hpp"

namespace fusedmoe::cli {

namespace {
struct RunOptions {
  ProblemOptions problem;
  std::string backend;
  int repeats = 3;
  // File-to-file mode.
  std::string checkpoint, block, config_file, input, output;
  int layer = -1;
};

// Reads tensor `hidden_states` [M, H] from a safetensors file, converted to the run's dtype.
Tensor read_hidden_states(const std::string& path, const MoeConfig& config) {
  const SafetensorsFile file = SafetensorsFile::open(path);
  if (!file.contains("hidden_states")) {
    std::string names;
    for (const std::string& name : file.names()) append_joined(names, ", ", name);
    throw InvalidArgument(str_cat("[run] ", path, " has no tensor 'hidden_states' [M, ", config.hidden_size,
                                  "]; it holds: ", names.empty() ? "nothing" : names));
  }
  const SafetensorsTensorInfo& info = file.info("hidden_states");
  FUSEDMOE_CHECK(info.shape.size() == 2 && info.shape[1] == config.hidden_size, "[run] ", path,
                 ": tensor 'hidden_states' shape must be [M, ", config.hidden_size, "]");
  return file.load_as("hidden_states", config.act_dtype);
}

void run(const RunOptions& options) {
  // Before minutes of loading a checkpoint: a missing GPU is known now. (Expert-parallel ranks check the GPU
  // of their rank when they make the communicator, after loading.)
  if (options.problem.ep <= 1) require_device_present(parse_device(options.problem.device), "run");
  if (!options.output.empty()) require_writable_file(options.output, "run", "--output");
  MoeConfig config;
  MoeWeights weights;
  std::string source = "preset " + options.problem.preset;
  if (!options.checkpoint.empty()) {
    FUSEDMOE_CHECK(options.block.empty(), "[run] give --checkpoint or --block, not both");
    FUSEDMOE_CHECK(options.layer >= 0,
                   "[run] --checkpoint needs --layer L (the decoder layer whose MoE block to run)");
    const HfCheckpoint checkpoint = HfCheckpoint::open(options.checkpoint);
    config = checkpoint.moe_config(options.layer, parse_dtype(options.problem.dtype));
    weights = checkpoint.load_moe_weights(options.layer, config.act_dtype);
    source = str_cat(checkpoint.architecture(), " layer ", options.layer, " of ", options.checkpoint);
  } else if (!options.block.empty()) {
    FUSEDMOE_CHECK(!options.config_file.empty(),
                   "[run] --block needs --config CONFIG.json (the model's config)");
    HfBlock block = load_hf_block(options.block, options.config_file, parse_dtype(options.problem.dtype));
    config = block.config;
    weights = std::move(block.weights);
    source = str_cat("block ", options.block);
  } else {
    FUSEDMOE_CHECK(
        options.input.empty() && options.output.empty(),
        "[run] --input/--output need a model: --checkpoint DIR --layer L, or --block FILE --config JSON");
    config = options.problem.config();
    weights = random_weights(config, options.problem.seed);
  }
  // A checkpoint's or block's own config takes the run's dispatch, batched sizes and device; its shape and
  // routing come from config.json (the shape flags are refused beside --checkpoint / --block).
  config.parallel.dispatch = parse_dispatch_mode(options.problem.dispatch);
  if (options.problem.batched_capacity > 0)
    config.parallel.batched_capacity = options.problem.batched_capacity;
  config.parallel.batched_rank_capacity = options.problem.batched_rank_capacity;
  config.device = parse_device(options.problem.device);
  LayerOptions layer_options;
  if (!options.backend.empty()) layer_options.backend = options.backend;
  // Expert parallelism: this rank holds its experts and an even share of the tokens.
  int rank = 0, ranks = 1;
  if (options.problem.ep > 1) {
    FUSEDMOE_CHECK(options.output.empty(), "[run] --output is single-rank only; drop --ep or --output");
    const std::shared_ptr<Communicator> world = make_mpi_world_communicator();
    ranks = world->size();
    rank = world->rank();
    FUSEDMOE_CHECK(ranks == options.problem.ep, "[run] --ep ", options.problem.ep, " but this job has ",
                   ranks, " MPI ranks: run `mpirun -np ", options.problem.ep, " fusedmoe run --ep ",
                   options.problem.ep, " ...`");
    layer_options.communicator = make_ep_communicator(world, config.device, options.problem.device, "run");
    config.parallel.ep_size = ranks;
    config.parallel.ep_rank = rank;
    config.parallel.dispatch = parse_dispatch_mode(options.problem.ep_mode);
    config.parallel.placement = parse_placement(options.problem.placement);
    config.validate();
    const std::vector<std::int32_t> mine =
        local_experts(config.num_experts, ranks, rank, config.parallel.placement);
    weights.w13 = gather_experts(weights.w13, mine);
    weights.w2 = gather_experts(weights.w2, mine);
  }
  // On a GPU the layer takes its expert weights, inputs and outputs there; the results come back for the
  // checksum and --output.
  FusedMoeLayer layer(config, layer_options);
  layer.set_weights(weights_on(std::move(weights), config.device));
  layer.finalize_weights();
  Tensor hidden = !options.input.empty()
                      ? read_hidden_states(options.input, config)
                      : random_hidden(config, options.problem.tokens, options.problem.seed);
  if (ranks > 1) {
    const std::int64_t all = hidden.size(0);
    hidden = Tensor::copy_of(hidden.view().slice_rows(all * rank / ranks, all * (rank + 1) / ranks));
  }
  const std::int64_t tokens = hidden.size(0);
  const Device device = config.device;
  const Tensor device_hidden = copy_to(hidden, device);
  const Tensor device_ids = Tensor::empty(DType::int32, {tokens, config.routing.top_k}, device);
  const Tensor device_weights = Tensor::empty(DType::fp32, {tokens, config.routing.top_k}, device);
  const RoutingOutputs routing{device_ids, device_weights};
  const Tensor device_out = Tensor::empty(config.act_dtype, {tokens, config.hidden_size}, device);
  const ExecContext context{.num_threads = options.problem.threads};
  const DeviceWait wait(device);
  layer.reserve(tokens);

  std::vector<double> times_ms;
  for (int repeat = 0; repeat <= options.repeats; ++repeat) {  // the first run warms up
    const auto start = std::chrono::steady_clock::now();
    layer.forward(device_hidden, device_out, context, routing);
    wait(context);
    const auto stop = std::chrono::steady_clock::now();
    if (repeat > 0 || options.repeats == 0) {
      times_ms.push_back(std::chrono::duration<double, std::milli>(stop - start).count());
    }
  }
  std::sort(times_ms.begin(), times_ms.end());
  double median_ms = times_ms[times_ms.size() / 2];
  if (ranks > 1) {  // the slowest rank's time; only rank 0 reports
    std::vector<std::int64_t> all(static_cast<std::size_t>(ranks));
    layer_options.communicator->all_gather_int64(std::bit_cast<std::int64_t>(median_ms), all);
    for (std::int64_t bits : all) median_ms = std::max(median_ms, std::bit_cast<double>(bits));
    if (rank != 0) return;
    source += str_cat(", expert parallel over ", ranks, " ranks (", to_string(config.parallel.dispatch),
                      "), rank 0's tokens");
  }
  const Tensor out = copy_to(device_out, Device::cpu());
  const Tensor topk_ids = copy_to(device_ids, Device::cpu());
  const Tensor topk_weights = copy_to(device_weights, Device::cpu());
  const Checksum sums = checksum(out);
  const std::string& backend = layer.selection().backend->id;
  if (!options.output.empty()) {
    SafetensorsWriter writer;
    writer.add("output", out);
    writer.add("topk_ids", topk_ids);
    writer.add("topk_weights", topk_weights);
    writer.set_metadata("backend", backend);
    writer.set_metadata("source", source);
    writer.write(options.output);
  }
  if (options.problem.json) {
    print_json_line({{"source", source},
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
  std::cout << "source:   " << source << "\n"
            << "backend:  " << backend << "\n"
            << "config:   " << config.describe() << "\n"
            << "shapes:   hidden [" << tokens << ", " << config.hidden_size << "] -> out [" << tokens << ", "
            << config.hidden_size << "]\n"
            << "time:     " << std::fixed << std::setprecision(3) << median_ms << " ms (median of "
            << times_ms.size() << " after a warm-up)\n"
            << std::setprecision(6) << "checksum: sum " << sums.sum << ", sum|x| " << sums.abs_sum << "\n";
  if (!options.output.empty())
    std::cout << "wrote:    " << options.output << " (output, topk_ids, topk_weights)\n";
}
}  // namespace

void add_run_command(CLI::App& app) {
  auto options = std::make_shared<RunOptions>();
  CLI::App* command = app.add_subcommand(
      "run",
      "Run one MoE forward: a built-in preset with random weights, or a Hugging Face layer file to file");
  options->problem.add_to(*command);
  command->add_option("--backend", options->backend,
                      "Force a backend id (else FUSEDMOE_BACKEND, else the oracle)");
  command->add_option("--repeats", options->repeats, "Timed repetitions after one warm-up")
      ->capture_default_str()
      ->check(at_least(0));
  CLI::Option* checkpoint = command->add_option(
      "--checkpoint", options->checkpoint, "Hugging Face checkpoint directory (config.json + safetensors)");
  command->add_option("--layer", options->layer, "Decoder layer of --checkpoint whose MoE block runs");
  CLI::Option* block = command->add_option("--block", options->block,
                                           "One MoE block saved with its Hugging Face state_dict names");
  // A model file brings its own shape, routing and dtypes: flags that would change them are refused with it
  // rather than silently ignored.
  for (const char* shape_flag :
       {"--preset", "--hidden", "--intermediate", "--experts", "--topk", "--routing", "--groups",
        "--topk-group", "--routed-scaling", "--weight-dtype", "--activation", "--shared-experts",
        "--shared-intermediate", "--shared-gate"}) {
    checkpoint->excludes(command->get_option(shape_flag));
    block->excludes(command->get_option(shape_flag));
  }
  command->add_option("--config", options->config_file, "The model's config.json, for --block");
  command->add_option("--input", options->input,
                      "safetensors file with tensor hidden_states [M, H] (else random --tokens rows)");
  command->add_option("--output", options->output,
                      "Write output [M, H], topk_ids [M, k], topk_weights [M, k] here");
  command->callback([options] { run(*options); });
}

}  // namespace fusedmoe::cli
