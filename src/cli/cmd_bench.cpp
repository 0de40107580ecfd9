// `fusedmoe bench`: per preset, backend and token count: time per layer (modular backends: the experts only,
// from fixed routing; monolithic backends route inside, so their time includes the router, as the row's
// notes say), GB/s of distinct expert weights, GFLOP/s, and the ratio to this machine's floor measured in
// the same run. Correctness is checked once per row (fp64 reference on a few tokens) before timing.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <optional>
#include <set>
#include <sstream>

#include "check/compare.hpp"
#include "check/fp64_reference.hpp"
#include "check/random_model.hpp"
#include "cli/commands.hpp"
#include "cli/device_option.hpp"
#include "cli/machine_floor.hpp"
#include "cli/option_checks.hpp"
#include "cli/output.hpp"
#include "cli/presets.hpp"
#include "cli/routing_inputs.hpp"
#include "cli/validators.hpp"
#include "core/check.hpp"
#include "core/env.hpp"
#include "core/random.hpp"
#include "core/threading.hpp"
#include "fusedmoe/fusedmoe.hpp"
#if FUSEDMOE_WITH_CUDA
#include "backends/cuda_common/device_bench.hpp"
#endif

namespace fusedmoe::cli {

namespace {

// A backend that consumes only the batched format (cuda_batched, cpu_reference_batched) is timed behind
// local_batched, its dispatch on one device (slabs of the token count, chunks of batched_capacity tokens).
bool batched_only(std::string_view id, MoeConfig config, const Platform& platform) {
  const BackendInfo* backend = find_backend(id);
  if (backend == nullptr || backend->kind != ExpertsKind::modular) return false;
  if (backend->supports(config, platform, ActivationFormat::standard).ok) return false;
  config.parallel.dispatch = DispatchMode::local_batched;
  return backend->supports(config, platform, ActivationFormat::batched).ok;
}

struct BenchOptions {
  std::vector<std::string> peers;  // "torch"
  std::string device{"cpu"};
  bool no_graph = false;
  std::vector<std::string> presets{"qwen3-30b-a3b"};
  std::vector<std::int64_t> tokens{1, 4, 16, 64, 256, 1024};
  std::vector<std::string> backends;  // empty: the oracle's choice
  std::string routing{"uniform"};
  std::string dtype{"bf16"};
  int repeats = 5;
  int threads = 0;
  std::uint64_t seed = 0;
  bool json = false;
  bool no_flush = false;
};

// Evicts the caches between timed runs so every run streams its weights from memory: by reading the buffer
// (clean lines), or with FUSEDMOE_BENCH_FLUSH=write by incrementing it, which leaves the last-level cache
// full of dirty lines that the timed run then writes back (measured:
// bench/results/2026-11-27-cpu-session4.txt).
void flush_caches(const Tensor& buffer, bool write) {
  auto* words = buffer.data_as<std::uint64_t>();
  const std::int64_t count = buffer.numel();
  std::atomic<std::uint64_t> folded{0};
  parallel_for(count, resolve_num_threads({}), [&](std::int64_t begin, std::int64_t end) {
    if (write) {
      for (std::int64_t i = begin; i < end; ++i) words[i] += 1;
      return;
    }
    std::uint64_t sum = 0;  // integer sums vectorise freely
    for (std::int64_t i = begin; i < end; ++i) sum += words[i];
    folded.fetch_add(sum, std::memory_order_relaxed);  // keeps the loads
  });
  volatile std::uint64_t keep = folded.load();
  (void)keep;
}

// A PyTorch peer (bench/peers/torch_moe.py) on the same shape: `method` is loop (the Hugging Face
// per-expert loop) or grouped_mm (torch._grouped_mm); nullopt with the reason when PyTorch (or the method) is
// missing. FUSEDMOE_PEERS_DIR overrides the script's folder (this source tree's bench/peers), for a CLI run
// away from its source tree; FUSEDMOE_PYTHON the interpreter (python3), for a PyTorch in a virtualenv.
std::optional<double> time_torch_peer(const MoeConfig& config, std::int64_t tokens, int repeats, int threads,
                                      const std::string& method, std::string& why_not) {
  const std::string script = env_string("FUSEDMOE_PEERS_DIR").value_or(FUSEDMOE_PEERS_DIR) + "/torch_moe.py";
  const std::string command = str_cat(
      env_string("FUSEDMOE_PYTHON").value_or("python3"), " ", script, " --hidden ", config.hidden_size,
      " --intermediate ", config.intermediate_size, " --experts ", config.num_experts, " --topk ",
      config.routing.top_k, " --tokens ", tokens, " --repeats ", repeats, " --threads ", threads,
      " --device ", to_string(config.device), " --method ", method, " 2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    why_not = "cannot start python3";
    return std::nullopt;
  }
  std::string output;
  char buffer[512];
  while (fgets(buffer, sizeof(buffer), pipe) != nullptr) output += buffer;
  const int status = pclose(pipe);
  try {
    if (status == 0)
      return nlohmann::json::parse(output.substr(output.rfind('{'))).at("time_ms").get<double>();
  } catch (const std::exception&) {
  }
  why_not = output.find("No module named 'torch'") != std::string::npos
                ? "PyTorch is not installed (pip install torch)"
                : "the peer script failed: " + output.substr(0, 200);
  return std::nullopt;
}

struct Row {
  std::string preset, backend;
  std::int64_t tokens = 0;
  double time_ms = 0, floor_ms = 0, gb_per_s = 0, gflop_per_s = 0, bytes = 0, flops = 0, rel_error = 0;
  bool passed = true;
  bool includes_routing = false;  // a monolithic backend: the router runs inside the timed forward
};

void print_row(const Row& row, const MoeConfig& config, bool json, int threads) {
  if (json) {
    print_json_line({{"preset", row.preset},
                     {"device", to_string(config.device)},
                     {"backend", row.backend},
                     {"tokens", row.tokens},
                     {"threads", threads},
                     {"time_ms", row.time_ms},
                     {"gb_per_s", row.gb_per_s},
                     {"gflop_per_s", row.gflop_per_s},
                     {"floor_ms", row.floor_ms},
                     {"ratio_to_floor", row.time_ms / row.floor_ms},
                     {"distinct_bytes", row.bytes},
                     {"flops", row.flops},
                     {"check_relative_error", row.rel_error},
                     {"check_passed", row.passed},
                     {"includes_routing", row.includes_routing}});
    return;
  }
  std::cout << std::left << std::setw(15) << row.preset << std::setw(25) << row.backend << std::right
            << std::setw(6) << row.tokens << std::fixed << std::setprecision(3) << std::setw(11)
            << row.time_ms << std::setprecision(1) << std::setw(9) << row.gb_per_s << std::setw(9)
            << row.gflop_per_s << std::setprecision(3) << std::setw(10) << row.floor_ms
            << std::setprecision(2) << std::setw(7) << row.time_ms / row.floor_ms << "  "
            << (row.backend.starts_with("peer:") ? "(peer)"
                : row.passed                     ? "passed"
                                                 : "FAILED")
            << (row.includes_routing ? "  (time includes routing)" : "") << "\n";
}

void bench(const BenchOptions& options) {
  const Device device = parse_device(options.device);
  const bool on_gpu = device.is_cuda();
  require_device_present(device, "bench");
  // Every name is checked before the floor is measured and the first preset timed.
  for (const std::string& preset_name : options.presets) (void)find_preset(preset_name);
  FUSEDMOE_CHECK(is_floating(parse_dtype(options.dtype)), "[bench] --dtype ", options.dtype,
                 ": expected bf16, fp16 or fp32");
  require_known_backends(options.backends, "bench");
  const int threads = options.threads > 0 ? options.threads : resolve_num_threads({});
  const bool progress = !options.json && isatty(STDERR_FILENO);
  const bool write_flush = env_switch("FUSEDMOE_BENCH_FLUSH", "read", "write");  // a bad value fails here
#if FUSEDMOE_WITH_CUDA
  const std::string gpu_flush = on_gpu ? cuda::l2_flush_description() : "";  // a bad value fails here
  const bool gemm_on_zeros = on_gpu && cuda::gemm_ceiling_on_zeros();        // a bad value fails here
#else
  const std::string gpu_flush;
  const bool gemm_on_zeros = false;
#endif
  if (progress) std::cerr << "measuring this machine's floor...\r" << std::flush;
  MachineFloor floor;
  if (on_gpu) {
#if FUSEDMOE_WITH_CUDA
    const cuda::DeviceCeilings ceilings = cuda::measure_device_ceilings(device.index);
    floor.read_gb_per_s = ceilings.copy_tb_per_s * 1e3;
    floor.fma_gflop_per_s = ceilings.bf16_gemm_tflop_per_s * 1e3;
    floor.fma_isa = gemm_on_zeros ? "cublas bf16 gemm 8192^3 (zeros)" : "cublas bf16 gemm 8192^3";
#endif
  } else {
    floor = measure_cpu_floor(threads);
  }
  const Tensor flush_buffer =
      on_gpu ? Tensor() : Tensor::zeros(DType::int64, {(std::int64_t{256} << 20) / 8});
  if (!options.json && on_gpu) {
    std::cout << "machine: " << Platform::detect(device).describe() << "\n"
              << "floor:   device copy " << std::setprecision(3) << std::fixed << floor.read_gb_per_s / 1e3
              << " TB/s (read + write), bf16 GEMM " << floor.fma_gflop_per_s / 1e3
              << " TFLOP/s (cuBLAS 8192^3, " << (gemm_on_zeros ? "zero" : "random") << " operands); "
              << gpu_flush << "; " << (options.no_graph ? "eager launches" : "CUDA-graph replays") << "\n"
              << std::left << std::setw(15) << "preset" << std::setw(25) << "backend" << std::right
              << std::setw(6) << "M" << std::setw(11) << "time_ms" << std::setw(9) << "GB/s" << std::setw(9)
              << "GFLOP/s" << std::setw(10) << "floor_ms" << std::setw(7) << "ratio"
              << "  check\n";
  } else if (!options.json) {
    std::cout << "machine: " << Platform::detect().describe() << "; " << threads << " threads\n"
              << "floor:   read " << std::setprecision(1) << std::fixed << floor.read_gb_per_s
              << " GB/s, fp32 FMA (" << floor.fma_isa << ") " << floor.fma_gflop_per_s
              << " GFLOP/s, bf16 dot product " << floor.bf16_dot_gflop_per_s
              << " GFLOP/s (the compute floor of bf16 rows); caches "
              << (options.no_flush ? "not flushed"
                  : write_flush    ? "flushed before each run (written: the run also writes back dirty lines)"
                                   : "flushed before each run (read: no dirty lines left)")
              << "\n"
              << std::left << std::setw(15) << "preset" << std::setw(25) << "backend" << std::right
              << std::setw(6) << "M" << std::setw(11) << "time_ms" << std::setw(9) << "GB/s" << std::setw(9)
              << "GFLOP/s" << std::setw(10) << "floor_ms" << std::setw(7) << "ratio"
              << "  check\n";
  } else {
    print_json_line({{"machine", Platform::detect(device).describe()},
                     {"threads", threads},
                     {"read_gb_per_s", floor.read_gb_per_s},
                     {"fma_gflop_per_s", floor.fma_gflop_per_s},
                     {"bf16_dot_gflop_per_s", floor.bf16_dot_gflop_per_s},
                     {"cache_flush", on_gpu             ? gpu_flush
                                     : options.no_flush ? std::string("none")
                                     : write_flush      ? std::string("write")
                                                        : std::string("read")}});
  }
  const ExecContext context{.num_threads = threads};
  bool any_failed = false;
  for (const std::string& preset_name : options.presets) {
    const Preset& preset = find_preset(preset_name);
    MoeConfig config;
    config.num_experts = preset.num_experts;
    config.hidden_size = preset.hidden_size;
    config.intermediate_size = preset.intermediate_size;
    config.routing = preset.routing;
    config.act_dtype = config.weight_dtype = parse_dtype(options.dtype);
    config.device = device;
    config.validate();
    if (progress)
      std::cerr << "generating " << preset_name << " weights...                         \r" << std::flush;
    const MoeWeights weights = random_weights(config, options.seed);
    const bool with_bias = config.routing.use_correction_bias;
    std::vector<std::string> backend_ids = options.backends;
    if (backend_ids.empty())
      backend_ids.push_back(select_backend(config, Platform::detect(device)).backend->id);
    for (const std::string& backend_id : backend_ids) {
      config.parallel.dispatch = batched_only(backend_id, config, Platform::detect(device))
                                     ? DispatchMode::local_batched
                                     : DispatchMode::local;
      const Selection selection = select_backend(config, Platform::detect(device), backend_id);
      const BackendInfo& backend = *selection.backend;
      // Monolithic backends take router logits and route inside (their time includes the router).
      const bool monolithic = backend.kind == ExpertsKind::monolithic;
      const std::shared_ptr<const ExpertWeights> converted =
          backend.convert_weights(weights.w13, weights.w2, config);
      std::unique_ptr<PrepareFinalize> prepare_finalize;
      if (monolithic) {
        prepare_finalize = make_prepare_finalize_monolithic(config);
      } else {
        prepare_finalize = make_prepare_finalize(config);
      }
      MoeKernel kernel(config, std::move(prepare_finalize), backend.make_experts(config),
                       {.max_chunk_tokens = 0});
      for (std::int64_t tokens : options.tokens) {
        if (progress) {
          std::cerr << preset_name << " " << backend_id << " M=" << tokens << "...                      \r"
                    << std::flush;
        }
        const int top_k = config.routing.top_k;
        const Tensor hidden = random_hidden(config, tokens, options.seed + 1);
        const Tensor ids = Tensor::empty(DType::int32, {tokens, top_k});
        const Tensor routing_weights = Tensor::empty(DType::fp32, {tokens, top_k});
        make_routing(tokens, config.num_experts, top_k, routing_pattern_from_name(options.routing),
                     options.seed + tokens, ids, routing_weights);
        Tensor logits;
        if (monolithic) {
          // Logits that put those ids on top; the reference and the byte count then use the CPU router's
          // answer on them (the same ids unless the recipe's groups exclude some).
          logits = Tensor::empty(DType::fp32, {tokens, config.num_experts});
          make_router_logits(ids, config.num_experts, logits);
          route(logits, config.routing, with_bias ? weights.correction_bias.view() : TensorView{}, ids,
                routing_weights);
        }
        // Inputs where the layer runs; the check reads the output back to the CPU.
        auto on_device = [&](const Tensor& host) {
          if (!on_gpu) return host;
          Tensor copy = Tensor::empty(host.dtype(), host.shape(), device);
          copy_tensor(host, copy);
          return copy;
        };
        const Tensor hidden_d = on_device(hidden), ids_d = on_device(ids),
                     weights_d = on_device(routing_weights);
        const Tensor logits_d = monolithic ? on_device(logits) : Tensor();
        const Tensor bias_d = monolithic && with_bias ? on_device(weights.correction_bias) : Tensor();
        Tensor out_host = Tensor::empty(config.act_dtype, {tokens, config.hidden_size});
        fill_nan(out_host);
        const Tensor out = on_device(out_host);
        const auto forward = [&](const ExecContext& run_context) {
          if (monolithic) {
            kernel.forward_monolithic(hidden_d, logits_d, bias_d, *converted, out, run_context);
          } else {
            kernel.forward(hidden_d, ids_d, weights_d, {}, *converted, out, run_context);
          }
        };
        kernel.reserve(tokens);
        forward(context);  // warm-up + check
        if (on_gpu) copy_tensor(out, out_host);
        Row row{preset_name, backend_id, tokens};
        row.includes_routing = monolithic;
        const std::int64_t checked = std::min<std::int64_t>(tokens, 3);
        const std::vector<double> reference = fp64_moe_reference(
            config, weights, hidden.view().slice_rows(0, checked), ids.view().slice_rows(0, checked),
            routing_weights.view().slice_rows(0, checked));
        row.rel_error =
            compare_to_reference(out_host.view().slice_rows(0, checked), reference).relative_error;
        row.passed = row.rel_error <= tolerance_for(config.act_dtype);
        any_failed |= !row.passed;

        std::vector<double> times;
        if (on_gpu) {
#if FUSEDMOE_WITH_CUDA
          bool graph_used = false;
          times = cuda::time_on_device(
              device.index, options.repeats, !options.no_graph, graph_used,
              [&](StreamHandle stream) { forward(ExecContext{.stream = stream, .num_threads = threads}); });
          if (!graph_used && !options.no_graph && !options.json)
            std::cerr << "(graph capture failed: eager timing)\n";
#endif
        } else {
          for (int repeat = 0; repeat < options.repeats; ++repeat) {
            if (!options.no_flush) flush_caches(flush_buffer, write_flush);
            const auto start = std::chrono::steady_clock::now();
            forward(context);
            times.push_back(
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
          }
        }
        std::sort(times.begin(), times.end());
        row.time_ms = times[times.size() / 2];
        std::set<std::int32_t> touched(ids.data_as<std::int32_t>(),
                                       ids.data_as<std::int32_t>() + tokens * top_k);
        const double expert_bytes =
            3.0 * config.hidden_size * config.intermediate_size * dtype_size(config.weight_dtype);
        row.bytes = static_cast<double>(touched.size()) * expert_bytes +
                    2.0 * tokens * config.hidden_size * dtype_size(config.act_dtype);
        row.flops = 6.0 * config.hidden_size * config.intermediate_size * top_k * tokens;
        row.gb_per_s = row.bytes / (row.time_ms * 1e-3) / 1e9;
        row.gflop_per_s = row.flops / (row.time_ms * 1e-3) / 1e9;
        row.floor_ms = std::max(row.bytes / (floor.read_gb_per_s * 1e9),
                                row.flops / (floor.compute_peak(config.act_dtype == DType::bf16) * 1e9)) *
                       1e3;
        if (progress) std::cerr << std::string(60, ' ') << "\r";
        print_row(row, config, options.json, threads);
      }
    }
    for (const std::string& peer : options.peers) {
      FUSEDMOE_CHECK(peer == "torch" || peer == "torch_loop" || peer == "torch_grouped_mm",
                     "[bench] unknown peer '", peer,
                     "': expected torch (both methods), torch_loop or torch_grouped_mm");
      std::vector<std::string> methods;
      if (peer != "torch_grouped_mm") methods.emplace_back("loop");
      if (peer != "torch_loop") methods.emplace_back("grouped_mm");
      for (const std::string& method : methods) {
        for (std::int64_t tokens : options.tokens) {
          std::string why_not;
          const std::optional<double> time_ms =
              time_torch_peer(config, tokens, options.repeats, threads, method, why_not);
          if (!time_ms) {
            std::cerr << "peer torch_" << method << ": skipped: " << why_not << "\n";
            break;
          }
          Row row{preset_name, "peer:torch_" + method, tokens};
          row.time_ms = *time_ms;
          row.flops = 6.0 * config.hidden_size * config.intermediate_size * config.routing.top_k * tokens;
          // Distinct experts of a uniform routing, expected value: E (1 - (1 - k/E)^M).
          const double touched =
              config.num_experts *
              (1.0 - std::pow(1.0 - static_cast<double>(config.routing.top_k) / config.num_experts,
                              static_cast<double>(tokens)));
          row.bytes =
              touched * 3.0 * config.hidden_size * config.intermediate_size * dtype_size(config.weight_dtype);
          row.gb_per_s = row.bytes / (row.time_ms * 1e-3) / 1e9;
          row.gflop_per_s = row.flops / (row.time_ms * 1e-3) / 1e9;
          row.floor_ms = std::max(row.bytes / (floor.read_gb_per_s * 1e9),
                                  row.flops / (floor.compute_peak(config.act_dtype == DType::bf16) * 1e9)) *
                         1e3;
          print_row(row, config, options.json, threads);
        }
      }
    }
  }
  if (any_failed) exit_status() = 1;
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto options = std::make_shared<BenchOptions>();
  CLI::App* command = app.add_subcommand(
      "bench", "Time MoE layers per preset, backend and token count against the machine's floor");
  command
      ->add_option("--preset", options->presets,
                   "Presets (repeatable): qwen3-30b-a3b, mixtral-8x7b, olmoe-1b-7b, deepseek-v3, small")
      ->capture_default_str();
  command->add_option("--tokens", options->tokens, "Token counts (repeatable or comma-separated)")
      ->delimiter(',')
      ->capture_default_str()
      ->check(at_least(0));
  command->add_option(
      "--backend", options->backends,
      "Backends to time (repeatable; default: the oracle's choice; batched-format ones behind "
      "local_batched)");
  command
      ->add_option(
          "--routing", options->routing,
          "uniform; skewed (every token's first choice is expert 0); or balanced (token t, slot j -> "
          "expert (t*k + j) mod E: equal rows per expert, no padding where M*k/E is a multiple of the "
          "tile's rows). The PyTorch peers always route uniformly")
      ->check(CLI::IsMember({"uniform", "skewed", "balanced"}))
      ->capture_default_str();
  command->add_option("--dtype", options->dtype, "Weight and activation dtype")->capture_default_str();
  command->add_option("--repeats", options->repeats, "Timed runs per row (median reported)")
      ->capture_default_str()
      ->check(at_least(1));
  command->add_option("--threads", options->threads, "CPU threads (0: FUSEDMOE_NUM_THREADS or all cores)")
      ->check(thread_count());
  command->add_option("--seed", options->seed, "Seed of weights, inputs and routing")->capture_default_str();
  command->add_flag("--no-flush", options->no_flush, "Do not evict caches between runs (CPU)");
  command->add_option("--device", options->device, "cpu or cuda:N")->capture_default_str();
  command->add_flag("--no-graph", options->no_graph,
                    "GPU: time eager launches instead of CUDA-graph replays");
  command->add_flag("--json", options->json, "One JSON object per line and row");
  command
      ->add_option("--peer", options->peers,
                   "Also time a peer in the same run, where PyTorch is installed: torch (both "
                   "methods), torch_loop (the Hugging Face per-expert loop) or torch_grouped_mm "
                   "(torch._grouped_mm over the expert-sorted pairs). Runs bench/peers/torch_moe.py "
                   "with python3; FUSEDMOE_PEERS_DIR and FUSEDMOE_PYTHON override either")
      ->check(CLI::IsMember({"torch", "torch_loop", "torch_grouped_mm"}));
  command->callback([options] { bench(*options); });
}

}  // namespace fusedmoe::cli
