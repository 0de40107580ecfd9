// `fusedmoe check`: every supported backend against the fp64 reference on one shape.
#include <algorithm>
#include <bit>
#include <chrono>
#include <iomanip>
#include <iostream>
#include <vector>

#include "check/compare.hpp"
#include "check/fp64_reference.hpp"
#include "check/random_model.hpp"
#include "cli/commands.hpp"
#include "cli/device_option.hpp"
#include "cli/device_tensors.hpp"
#include "cli/ep_communicator.hpp"
#include "cli/option_checks.hpp"
#include "cli/output.hpp"
#include "cli/problem_options.hpp"
#include "core/check.hpp"
#include "core/elements.hpp"
#include "core/random.hpp"
#include "fusedmoe/communicator.hpp"
#include "fusedmoe/error.hpp"
#include "fusedmoe/layer.hpp"
#include "fusedmoe/oracle.hpp"
#include "parallel/expert_map.hpp"

namespace fusedmoe::cli {

namespace {
struct CheckOptions {
  ProblemOptions problem;
  std::vector<std::string> backends;  // empty: every supported one
};

bool same(const TensorView& a, const TensorView& b) {
  return a.nbytes() == b.nbytes() &&
         std::equal(a.data_as<const char>(), a.data_as<const char>() + a.nbytes(), b.data_as<const char>());
}

// Largest value over all ranks.
double max_over_ranks(Communicator& communicator, double value) {
  std::vector<std::int64_t> all(static_cast<std::size_t>(communicator.size()));
  communicator.all_gather_int64(std::bit_cast<std::int64_t>(value), all);
  double worst = 0.0;
  for (std::int64_t bits : all) worst = std::max(worst, std::bit_cast<double>(bits));
  return worst;
}

// Times the dispatch (prepare) and combine (finalize) of an expert-parallel PrepareFinalize, waiting for the
// device before and after each, so the times include the transfers and nothing else.
class TimedPrepareFinalize final : public PrepareFinalizeModular {
 public:
  TimedPrepareFinalize(std::unique_ptr<PrepareFinalizeModular> inner, Device device)
      : inner_(std::move(inner)), wait_(device) {}
  std::string_view name() const override { return inner_->name(); }
  ActivationFormat format() const override { return inner_->format(); }
  ExpertsProblem problem(std::int64_t num_tokens, const MoeConfig& config) const override {
    return inner_->problem(num_tokens, config);
  }
  std::size_t workspace_bytes(std::int64_t num_tokens, const MoeConfig& config) const override {
    return inner_->workspace_bytes(num_tokens, config);
  }
  bool experts_write_output_directly() const override { return inner_->experts_write_output_directly(); }
  std::int64_t max_tokens_per_call() const override { return inner_->max_tokens_per_call(); }
  std::int64_t agree_num_tokens(std::int64_t local, const ExecContext& context) override {
    return inner_->agree_num_tokens(local, context);
  }
  DispatchedTokens prepare(const TensorView& hidden, const TensorView& topk_ids,
                           const TensorView& topk_weights, const TensorView& expert_map,
                           WorkspaceArena& workspace, const ExecContext& context) override {
    wait_(context);
    const auto start = std::chrono::steady_clock::now();
    DispatchedTokens dispatched =
        inner_->prepare(hidden, topk_ids, topk_weights, expert_map, workspace, context);
    wait_(context);
    dispatch_ms +=
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    return dispatched;
  }
  void finalize(const DispatchedTokens& dispatched, const TensorView& expert_out, WeightAndReduce policy,
                const TensorView& out, WorkspaceArena& workspace, const ExecContext& context) override {
    wait_(context);
    const auto start = std::chrono::steady_clock::now();
    inner_->finalize(dispatched, expert_out, policy, out, workspace, context);
    wait_(context);
    combine_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  }
  double dispatch_ms = 0.0, combine_ms = 0.0;

 private:
  std::unique_ptr<PrepareFinalizeModular> inner_;
  DeviceWait wait_;
};

// Median wall time of `body` over `repeats` runs after a warm-up (body waits for the device itself).
template <class Body>
double median_ms(int repeats, Body&& body) {
  body();
  std::vector<double> times;
  for (int repeat = 0; repeat < repeats; ++repeat) {
    const auto start = std::chrono::steady_clock::now();
    body();
    times.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// `mpirun -np N fusedmoe check --ep N`: every rank holds its experts and an uneven share of the tokens
// (the first rank may get none); each rank compares its expert-parallel output with the single-rank output
// of the same backend on the same tokens, and with fp64. On CPU tensors the ranks talk over MPI; with
// --device cuda over NCCL (made from the MPI ranks), each rank on the GPU of its local rank (--device cuda:N:
// GPU N on every rank, for per-rank CUDA_VISIBLE_DEVICES), and the dispatch and combine are timed.
void check_expert_parallel(const CheckOptions& options) {
  const std::shared_ptr<Communicator> world = make_mpi_world_communicator();
  const int ep = options.problem.ep;
  FUSEDMOE_CHECK(world->size() == ep, "[check] --ep ", ep, " but this job has ", world->size(),
                 " MPI ranks: run `mpirun -np ", ep, " fusedmoe check --ep ", ep, " ...`");
  const int rank = world->rank();
  MoeConfig parallel = options.problem.parallel_config(rank);
  const std::shared_ptr<Communicator> communicator =
      make_ep_communicator(world, parallel.device, options.problem.device, "check");
  const Device device = parallel.device;
  // The single-rank reference runs the same backend, so it gets the local dispatch of the same format.
  MoeConfig single = options.problem.config();
  single.device = device;
  single.parallel.dispatch = dispatch_format(parallel) == ActivationFormat::batched
                                 ? DispatchMode::local_batched
                                 : DispatchMode::local;
  const std::int64_t total = options.problem.tokens;
  const MoeWeights weights = random_weights(single, options.problem.seed);
  const Tensor hidden_all = random_hidden(single, total, options.problem.seed);
  const std::int64_t begin = total * rank * (rank + 1) / (ep * (ep + 1));
  const std::int64_t end = total * (rank + 1) * (rank + 2) / (ep * (ep + 1));
  const Tensor hidden = Tensor::copy_of(hidden_all.view().slice_rows(begin, end));
  const Tensor device_hidden = copy_to(hidden, device);
  const std::int64_t tokens = end - begin;
  const double tolerance = single.act_dtype == DType::fp32 ? 1e-6 : tolerance_for(single.act_dtype);
  const ExecContext context{.num_threads = options.problem.threads};
  if (rank == 0 && !options.problem.json) {
    std::cout << "config: " << parallel.describe() << ", " << ep << " ranks over " << communicator->name()
              << ", " << to_string(parallel.parallel.dispatch) << ", "
              << to_string(parallel.parallel.placement) << " placement, " << total
              << " tokens split unevenly; tolerance " << tolerance << " against the single-rank output\n";
    if (parallel.parallel.dispatch == DispatchMode::all2all_batched &&
        parallel.parallel.batched_rank_capacity > 0) {
      std::cout << "note: --ep-rank-capacity " << parallel.parallel.batched_rank_capacity
                << ": pairs past it are dropped by design, so the output differs from the single rank's "
                   "whenever a rank sends another more pairs than that in one chunk\n";
    }
  }
  int checked = 0, failed = 0;
  for (const Candidate& candidate : evaluate_backends(parallel, Platform::detect(parallel.device))) {
    const std::string& id = candidate.backend->id;
    if (!options.backends.empty() &&
        std::find(options.backends.begin(), options.backends.end(), id) == options.backends.end()) {
      continue;
    }
    if (!candidate.support.ok) {
      if (rank == 0 && !options.problem.json && candidate.backend->device_kind == device.kind) {
        std::cout << "  " << id << ": skipped: " << candidate.support.reason << "\n";
      }
      continue;
    }
    FusedMoeLayer reference(single, LayerOptions::with_backend(id));
    reference.set_weights(weights_on(weights, device));
    reference.finalize_weights();
    const Tensor device_expected = Tensor::empty(single.act_dtype, {tokens, single.hidden_size}, device);
    const Tensor device_ids = Tensor::empty(DType::int32, {tokens, single.routing.top_k}, device);
    const Tensor device_routing = Tensor::empty(DType::fp32, {tokens, single.routing.top_k}, device);
    reference.forward(device_hidden, device_expected, context, RoutingOutputs{device_ids, device_routing});
    const Tensor expected = copy_to(device_expected, Device::cpu());
    const Tensor ids = copy_to(device_ids, Device::cpu());
    const Tensor routing_weights = copy_to(device_routing, Device::cpu());

    LayerOptions layer_options = LayerOptions::with_backend(id);
    layer_options.communicator = communicator;
    FusedMoeLayer layer(parallel, layer_options);
    MoeWeights local = weights;
    local.w13 = gather_experts(weights.w13, layer.local_expert_ids());
    local.w2 = gather_experts(weights.w2, layer.local_expert_ids());
    layer.set_weights(weights_on(local, device));
    layer.finalize_weights();
    const Tensor nan_out = Tensor::empty(single.act_dtype, {tokens, single.hidden_size});
    if (tokens > 0) fill_nan(nan_out);
    const Tensor device_out = copy_to(nan_out, device);
    layer.forward(device_hidden, device_out, context);
    const Tensor out = copy_to(device_out, Device::cpu());

    std::vector<double> single_values(static_cast<std::size_t>(expected.numel()));
    for (std::int64_t i = 0; i < expected.numel(); ++i)
      single_values[i] = load_element(expected.data(), expected.dtype(), i);
    const double vs_single = tokens > 0 ? compare_to_reference(out, single_values).relative_error : 0.0;
    const double vs_fp64 =
        tokens > 0
            ? compare_to_reference(out, fp64_moe_reference(single, weights, hidden, ids, routing_weights))
                  .relative_error
            : 0.0;
    const double worst_single = max_over_ranks(*communicator, vs_single);
    const double worst_fp64 = max_over_ranks(*communicator, vs_fp64);
    const bool ok = worst_single <= tolerance && worst_fp64 <= tolerance_for(single.act_dtype);
    ++checked;
    failed += ok ? 0 : 1;

    // On a GPU: the single-GPU forward of this rank's tokens against the expert-parallel one, and the
    // latter's dispatch + combine (slowest rank, medians of 20 runs).
    double single_ms = 0.0, parallel_ms = 0.0, dispatch_ms = 0.0, combine_ms = 0.0;
    if (device.is_cuda()) {
      const DeviceWait wait(device);
      const auto synchronize = [&] { wait(context); };
      constexpr int kRepeats = 20;
      single_ms = median_ms(kRepeats, [&] {
        reference.forward(device_hidden, device_expected, context);
        synchronize();
      });
      parallel_ms = median_ms(kRepeats, [&] {
        layer.forward(device_hidden, device_out, context);
        synchronize();
      });
      const BackendInfo& backend = *candidate.backend;
      const auto converted =
          backend.convert_weights(copy_to(local.w13, device), copy_to(local.w2, device), parallel);
      auto timed =
          std::make_unique<TimedPrepareFinalize>(make_prepare_finalize(parallel, communicator), device);
      TimedPrepareFinalize& timer = *timed;
      MoeKernel kernel(parallel, std::move(timed), backend.make_experts(parallel));
      const Tensor map =
          copy_to(make_expert_map(parallel.num_experts, ep, rank, parallel.parallel.placement), device);
      const auto run_kernel = [&] {
        kernel.forward(device_hidden, device_ids, device_routing, map, *converted, device_out, context);
        synchronize();
      };
      run_kernel();  // warm-up
      timer.dispatch_ms = timer.combine_ms = 0.0;
      for (int repeat = 0; repeat < kRepeats; ++repeat) run_kernel();
      dispatch_ms = max_over_ranks(*communicator, timer.dispatch_ms / kRepeats);
      combine_ms = max_over_ranks(*communicator, timer.combine_ms / kRepeats);
      single_ms = max_over_ranks(*communicator, single_ms);
      parallel_ms = max_over_ranks(*communicator, parallel_ms);
    }
    if (rank != 0) continue;
    if (options.problem.json) {
      nlohmann::json line = {{"backend", id},
                             {"ranks", ep},
                             {"communicator", communicator->name()},
                             {"ep_mode", to_string(parallel.parallel.dispatch)},
                             {"placement", to_string(parallel.parallel.placement)},
                             {"tokens", total},
                             {"relative_error_vs_single_rank", worst_single},
                             {"relative_error_vs_fp64", worst_fp64},
                             {"passed", ok}};
      if (device.is_cuda()) {
        line["single_gpu_forward_ms"] = single_ms;
        line["ep_forward_ms"] = parallel_ms;
        line["dispatch_ms"] = dispatch_ms;
        line["combine_ms"] = combine_ms;
      }
      print_json_line(line);
    } else {
      std::cout << "  " << std::left << std::setw(20) << id << std::scientific << std::setprecision(3)
                << " vs single rank " << worst_single << "  vs fp64 " << worst_fp64 << "  "
                << (ok ? "PASS" : "FAIL") << "\n"
                << std::defaultfloat;
      if (device.is_cuda()) {
        std::cout << std::fixed << std::setprecision(3)
                  << "    time per forward (slowest rank, median of 20): "
                  << "single GPU " << single_ms << " ms, expert parallel " << parallel_ms
                  << " ms, of which dispatch " << dispatch_ms << " ms + combine " << combine_ms
                  << " ms (each waits for the GPU)\n"
                  << std::defaultfloat;
      }
    }
  }
  if (checked == 0) throw Unsupported("[check] no backend supports this expert-parallel configuration here");
  if (rank == 0 && !options.problem.json) std::cout << checked - failed << " of " << checked << " passed\n";
  if (failed > 0) exit_status() = 1;
}

void check(CheckOptions& options, CLI::App& command) {
  // --backend names only registered backends: a typo is an error, not "no backend supports this".
  require_known_backends(options.backends, "check");
  if (options.problem.ep > 1 || command.count("--ep-mode") > 0) {
    check_expert_parallel(options);
    return;
  }
  const bool dispatch_given = command.count("--dispatch") > 0;
  const MoeConfig base_config = options.problem.config();
  require_device_present(base_config.device, "check");
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
      if (!options.backends.empty() &&
          std::find(options.backends.begin(), options.backends.end(), id) == options.backends.end()) {
        continue;
      }
      if (!candidate.support.ok) {
        if (!options.problem.json && !options.backends.empty()) {
          std::cout << "  " << id << " [" << to_string(mode) << "]: skipped: " << candidate.support.reason
                    << "\n";
        }
        continue;
      }
      FusedMoeLayer layer(config, LayerOptions::with_backend(id));
      layer.set_weights(weights_on(weights, config.device));
      layer.finalize_weights(platform);
      // The layer's tensors live on its device (poisoned with NaN first); the comparison reads CPU copies.
      const Tensor nan_out = Tensor::empty(config.act_dtype, {tokens, config.hidden_size});
      fill_nan(nan_out);
      const Tensor device_out = copy_to(nan_out, config.device);
      const Tensor device_ids = Tensor::empty(DType::int32, {tokens, config.routing.top_k}, config.device);
      const Tensor device_weights = Tensor::empty(DType::fp32, {tokens, config.routing.top_k}, config.device);
      layer.forward(copy_to(hidden, config.device), device_out, context,
                    RoutingOutputs{device_ids, device_weights});
      const Tensor out = copy_to(device_out, Device::cpu());
      const Tensor ids = copy_to(device_ids, Device::cpu());
      const Tensor routing_weights = copy_to(device_weights, Device::cpu());
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
