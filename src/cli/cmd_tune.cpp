// `fusedmoe tune`: times every candidate configuration of cuda_fused (the persistent and streaming paths
// where they apply, each tile of the table, and two-tile pairs: tune_candidates in forward_choice.hpp) for a
// model shape at each token count on this GPU, checks each against fp64 first, and merges the fastest per
// token bucket into a JSON table (src/oracle/tuning.hpp) that later runs load through FUSEDMOE_TUNE_FILE.
#include <algorithm>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <limits>
#include <sstream>

#include "check/compare.hpp"
#include "check/fp64_reference.hpp"
#include "check/random_model.hpp"
#include "cli/commands.hpp"
#include "cli/device_option.hpp"
#include "cli/output.hpp"
#include "cli/presets.hpp"
#include "cli/routing_inputs.hpp"
#include "cli/validators.hpp"
#include "core/check.hpp"
#include "core/env.hpp"
#include "fusedmoe/fusedmoe.hpp"
#include "oracle/tuning.hpp"
#if FUSEDMOE_WITH_CUDA
#include "backends/cuda_common/device_bench.hpp"
#include "backends/cuda_fused/experts.hpp"
#endif

namespace fusedmoe::cli {

namespace {

struct TuneOptions {
  std::string device{"cuda:0"};
  std::string preset{"qwen3-30b-a3b"};
  std::vector<std::int64_t> tokens{1, 8, 64, 256, 1024, 4096, 16384};
  std::string output;  // default: FUSEDMOE_TUNE_FILE, else fusedmoe-tune.json
  int repeats = 10;
  std::uint64_t seed = 0;
  bool json = false;
  bool exact = false;  // only the listed token counts (no regime ends added)
};

#if FUSEDMOE_WITH_CUDA
void tune(const TuneOptions& options) {
  const Device device = parse_device(options.device);
  FUSEDMOE_CHECK(device.is_cuda(), "[tune] --device ", options.device,
                 ": tuning chooses between CUDA kernel configurations; expected cuda:N");
  require_device_present(device, "tune");
  FUSEDMOE_CHECK(options.repeats >= 1, "[tune] --repeats ", options.repeats, ": expected >= 1");
  FUSEDMOE_CHECK(!options.tokens.empty(), "[tune] --tokens: expected at least one token count");
  std::vector<std::int64_t> tokens = options.tokens;
  std::sort(tokens.begin(), tokens.end());
  tokens.erase(std::unique(tokens.begin(), tokens.end()), tokens.end());
  FUSEDMOE_CHECK(tokens.front() >= 1, "[tune] --tokens: expected counts >= 1, got ", tokens.front());

  const Preset& preset = find_preset(options.preset);
  MoeConfig config;
  config.num_experts = preset.num_experts;
  config.hidden_size = preset.hidden_size;
  config.intermediate_size = preset.intermediate_size;
  config.routing = preset.routing;
  config.device = device;
  config.validate();
  const Platform platform = Platform::detect(device);
  const BackendInfo* backend = find_backend("cuda_fused");
  FUSEDMOE_CHECK(backend != nullptr, "[tune] cuda_fused is not registered");
  const Support support = backend->supports(config, platform, ActivationFormat::standard);
  FUSEDMOE_CHECK(support.ok, "[tune] cuda_fused cannot run ", options.preset, " on ", options.device, ": ",
                 support.reason);
  const std::string output = !options.output.empty()
                                 ? options.output
                                 : env_string("FUSEDMOE_TUNE_FILE").value_or("fusedmoe-tune.json");

  // The table to update is read (and the output proved writable) before minutes of timing, not after.
  TuneTable table;
  if (std::ifstream(output).good()) table = TuneTable::load(output);
  table.save(output);

  // Below the largest listed count, also the last M of each tile regime (tune_token_counts), unless --exact.
  const std::vector<std::int64_t> listed = tokens;
  if (!options.exact) tokens = cuda_fused::tune_token_counts(config, tokens);

  const MoeWeights weights = random_weights(config, options.seed);
  const std::shared_ptr<const ExpertWeights> converted =
      backend->convert_weights(weights.w13, weights.w2, config);
  const int top_k = config.routing.top_k;
  TuneEntry entry;
  entry.key = TuneKey{.backend = "cuda_fused",
                      .device_name = platform.cuda.name,
                      .dtype = config.act_dtype,
                      .num_local_experts = config.num_local_experts(),
                      .hidden_size = config.hidden_size,
                      .intermediate_size = config.intermediate_size,
                      .top_k = top_k};
  if (!options.json) {
    std::cout << "tuning cuda_fused for " << options.preset << " (" << config.describe() << ") on "
              << platform.cuda.name << "; CUDA-graph replays, L2 flushed, median of " << options.repeats
              << "\n";
    std::string added;
    for (std::int64_t count : tokens) {
      if (!std::binary_search(listed.begin(), listed.end(), count))
        append_joined(added, ", ", std::to_string(count));
    }
    if (!added.empty()) {
      std::cout << "also M = " << added
                << ": where a tile regime of the heuristic ends (buckets end there too; --exact: only the "
                   "listed counts)\n";
    }
  }
  for (std::int64_t count : tokens) {
    const Tensor hidden = random_hidden(config, count, options.seed + 1);
    const Tensor ids = Tensor::empty(DType::int32, {count, top_k});
    const Tensor routing_weights = Tensor::empty(DType::fp32, {count, top_k});
    make_routing(count, config.num_experts, top_k, RoutingPattern::uniform,
                 options.seed + static_cast<std::uint64_t>(count), ids, routing_weights);
    auto on_device = [&](const Tensor& host) {
      Tensor copy = Tensor::empty(host.dtype(), host.shape(), device);
      copy_tensor(host, copy);
      return copy;
    };
    const Tensor hidden_d = on_device(hidden), ids_d = on_device(ids), weights_d = on_device(routing_weights);
    const Tensor out = Tensor::empty(config.act_dtype, {count, config.hidden_size}, device);
    const std::int64_t checked = std::min<std::int64_t>(count, 3);
    const std::vector<double> reference =
        fp64_moe_reference(config, weights, hidden.view().slice_rows(0, checked),
                           ids.view().slice_rows(0, checked), routing_weights.view().slice_rows(0, checked));

    TuneBucket best{.max_tokens = count, .choice = "", .time_ms = std::numeric_limits<double>::infinity()};
    for (const std::string& name : cuda_fused::tune_candidates(config, count)) {
      MoeKernel kernel(
          config, make_prepare_finalize(config),
          std::make_unique<cuda_fused::CudaFusedExperts>(config, cuda_fused::parse_forward_choice(name)),
          {.max_chunk_tokens = 0});
      kernel.reserve(count);
      kernel.forward(hidden_d, ids_d, weights_d, {}, *converted, out);
      Tensor out_host = Tensor::empty(config.act_dtype, {count, config.hidden_size});
      copy_tensor(out, out_host);
      const double error =
          compare_to_reference(out_host.view().slice_rows(0, checked), reference).relative_error;
      const bool passed = error <= tolerance_for(config.act_dtype);
      double median = std::numeric_limits<double>::infinity();
      if (passed) {
        bool graph_used = false;
        std::vector<double> times =
            cuda::time_on_device(device.index, options.repeats, true, graph_used, [&](StreamHandle stream) {
              kernel.forward(hidden_d, ids_d, weights_d, {}, *converted, out, ExecContext{.stream = stream});
            });
        std::sort(times.begin(), times.end());
        median = times[times.size() / 2];
        if (median < best.time_ms) best = TuneBucket{.max_tokens = count, .choice = name, .time_ms = median};
      }
      if (options.json) {
        print_json_line({{"preset", options.preset},
                         {"device", platform.cuda.name},
                         {"tokens", count},
                         {"choice", name},
                         {"time_ms", passed ? median : -1.0},
                         {"rel_error", error},
                         {"passed", passed}});
      } else {
        std::cout << "  M=" << std::setw(6) << count << "  " << std::left << std::setw(7) << name
                  << std::right;
        if (passed) {
          std::ostringstream time;
          time << std::fixed << std::setprecision(4) << median;
          std::cout << std::setw(10) << time.str() << " ms\n";
        } else {
          std::cout << "  FAILED the fp64 check (relative error " << error << "): not a candidate\n";
        }
      }
    }
    FUSEDMOE_CHECK(!best.choice.empty(), "[tune] every candidate failed the fp64 check at M=", count);
    if (!options.json) std::cout << "  M=" << std::setw(6) << count << "  -> " << best.choice << "\n";
    entry.buckets.push_back(best);
  }

  table.put(entry);
  table.save(output);
  if (!options.json) {
    std::cout << "wrote " << output << " (" << table.entries().size()
              << " entries); later runs use it with FUSEDMOE_TUNE_FILE=" << output << "\n";
  }
}
#else
void tune(const TuneOptions& options) {
  throw Unsupported(
      str_cat("[tune] --device ", options.device,
              ": fusedmoe was built without CUDA; tuning chooses between CUDA kernel configurations"));
}
#endif

}  // namespace

void add_tune_command(CLI::App& app) {
  auto options = std::make_shared<TuneOptions>();
  CLI::App* command = app.add_subcommand(
      "tune",
      "Measure cuda_fused's kernel choices per token count on this GPU and write a tune table (JSON)");
  command->add_option("--device", options->device, "cuda:N")->capture_default_str();
  command
      ->add_option("--preset", options->preset,
                   "Model shape: qwen3-30b-a3b, mixtral-8x7b, olmoe-1b-7b, deepseek-v3, small")
      ->capture_default_str();
  command->add_option("--tokens", options->tokens, "Token counts: the upper ends of the buckets")
      ->delimiter(',')
      ->capture_default_str()
      ->check(at_least(1));
  command->add_option(
      "--output", options->output,
      "Tune table to create or update (default: FUSEDMOE_TUNE_FILE, else fusedmoe-tune.json)");
  command->add_option("--repeats", options->repeats, "Timed runs per candidate (median)")
      ->capture_default_str()
      ->check(at_least(1));
  command->add_option("--seed", options->seed, "Seed of weights, inputs and routing")->capture_default_str();
  command->add_flag("--json", options->json, "One JSON object per line and candidate");
  command->add_flag(
      "--exact", options->exact,
      "Only the listed token counts (default: also the last M of each tile regime below the largest, "
      "so that no bucket spans two)");
  command->callback([options] { tune(*options); });
}

}  // namespace fusedmoe::cli
