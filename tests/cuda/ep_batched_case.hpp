// all2all_batched on CUDA devices over NCCL: capacity overflow against the documented drop rule, and the
// whole layer captured in a CUDA graph and replayed against eager, shared by the single-process test (one
// thread per GPU, tests/cuda/nccl_ep_test.cpp) and the MPI test (one process per GPU,
// tests/mpi/nccl_mpi_test.cpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "cuda/ep_device_case.hpp"
#include "parallel/prepare_finalize_ep.hpp"
#include "testing/ep_batched_drops.hpp"

namespace fusedmoe::testing {

// ---- capacity overflow ------------------------------------------------------------------------------

// 8 tokens per call, at most 4 (token, slot) pairs from one rank to another per call: the cases overflow.
inline constexpr std::int64_t kOverflowCapacity = 8, kOverflowRankCapacity = 4;

inline MoeConfig overflow_config(const EpProblem& p, int rank, Device device) {
  MoeConfig config = p.parallel(rank, device);
  config.parallel.batched_capacity = kOverflowCapacity;
  config.parallel.batched_rank_capacity = kOverflowRankCapacity;
  config.validate();
  return config;
}

// What the drop rule predicts: the single-device output with the dropped pairs' weights set to 0 (each
// rank's tokens in the calls that rank makes: chunks of min(most tokens on a rank, capacity)), and the
// number of pairs each rank drops.
struct OverflowExpectation {
  Tensor expected;                  // all tokens, on the CPU
  std::vector<std::int64_t> drops;  // per rank
};

inline OverflowExpectation overflow_expectation(const EpProblem& p) {
  EpProblem kept = p;
  kept.topk_weights = Tensor::copy_of(p.topk_weights);  // Tensor copies share storage
  std::int64_t most = 0;
  for (int r = 0; r < p.ranks; ++r) most = std::max(most, p.bounds[r + 1] - p.bounds[r]);
  OverflowExpectation result;
  for (int r = 0; r < p.ranks; ++r) {
    result.drops.push_back(zero_dropped_pairs(kept.ids, kept.topk_weights, p.bounds[r], p.bounds[r + 1],
                                              std::min(most, kOverflowCapacity), kOverflowRankCapacity,
                                              p.single.num_experts, p.ranks, p.c.placement));
  }
  result.expected = single_device_output(kept, Device::cpu());
  return result;
}

struct OverflowRun {
  double error = -1.0;
  BatchedAllToAllPrepareFinalize::DroppedPairs dropped;
};

// One rank's all2all_batched forward of its tokens under overflow_config (CPU reference Experts behind the
// device dispatch, no kernel chunking): its error against `expected` and the drops its dispatch counted.
inline OverflowRun run_overflow_rank(const EpProblem& p, const std::shared_ptr<Communicator>& communicator,
                                     int rank, int device_index, const Tensor& expected) {
  const Device device = Device::cuda(device_index);
  const MoeConfig config = overflow_config(p, rank, device);
  const std::int64_t begin = p.bounds[rank], end = p.bounds[rank + 1], tokens = end - begin;
  const std::vector<std::int32_t> mine = local_experts(config.num_experts, p.ranks, rank, p.c.placement);
  MoeConfig cpu = config;
  cpu.device = Device::cpu();
  const BackendInfo& backend = *find_backend("cpu_reference_batched");
  const auto converted =
      backend.convert_weights(gather_experts(p.weights.w13, mine), gather_experts(p.weights.w2, mine), cpu);
  MoeKernel kernel(config, make_prepare_finalize(config, communicator),
                   std::make_unique<HostExperts>(cpu, backend.make_experts(cpu)), {.max_chunk_tokens = 0});
  TestStream stream;
  const Tensor hidden = to_device(Tensor::copy_of(p.hidden.view().slice_rows(begin, end)), device);
  const Tensor ids = to_device(Tensor::copy_of(p.ids.view().slice_rows(begin, end)), device);
  const Tensor weights = to_device(Tensor::copy_of(p.topk_weights.view().slice_rows(begin, end)), device);
  const Tensor map = to_device(make_expert_map(config.num_experts, p.ranks, rank, p.c.placement), device);
  const Tensor out = Tensor::empty(config.act_dtype, {tokens, config.hidden_size}, device);
  if (tokens > 0) poison(out);
  kernel.forward(hidden, ids, weights, map, *converted, out, stream.context());
  OverflowRun run;
  run.dropped = dynamic_cast<const BatchedAllToAllPrepareFinalize&>(kernel.prepare_finalize())
                    .dropped_pairs(stream.context());
  stream.synchronize();
  run.error = 0.0;
  if (tokens == 0) return run;
  std::vector<double> reference(static_cast<std::size_t>(tokens * config.hidden_size));
  for (std::size_t i = 0; i < reference.size(); ++i) {
    reference[i] = load_element(expected.data(), expected.dtype(), begin * config.hidden_size + i);
  }
  run.error = compare_to_reference(to_host(out), reference).relative_error;
  return run;
}

// ---- the whole layer in a CUDA graph ---------------------------------------------------------------------

// Why the batched CUDA Experts cannot run `config` here ("" when they can).
inline std::string cuda_batched_skip_reason(const MoeConfig& config) {
  const BackendInfo* backend = find_backend("cuda_batched");
  if (backend == nullptr) {
    return "batched mode has no CUDA batched Experts (cuda_batched is not registered in this build)";
  }
  const Support support = backend->supports(config, Platform::detect(config.device), dispatch_format(config));
  return support.ok ? std::string() : str_cat("cuda_batched: ", support.reason);
}

// The layer of the graph tests: 8 experts, top 2, H = 64, I = 48, bf16, all2all_batched over 2 ranks with
// 16 tokens per call (a captured forward takes at most that many tokens per rank).
inline MoeConfig graph_layer_config(int rank, int device_index) {
  MoeConfig config = make_config(8, 2, 64, 48);
  config.device = Device::cuda(device_index);
  config.parallel = {
      .ep_size = 2, .ep_rank = rank, .dispatch = DispatchMode::all2all_batched, .batched_capacity = 16};
  return config;
}

struct GraphRun {
  double error = -1.0;    // eager against the single-GPU layer
  int equal_replays = 0;  // replays bitwise equal to eager
  int replays = 2;
};

// One rank: the layer's eager forward of tokens [begin, begin + count) of `hidden_all`, then the same forward
// captured (in `mode`) and replayed twice onto a poisoned output. `expected`: the single-GPU layer's output
// of all tokens, on the CPU.
inline GraphRun run_layer_graph_rank(const MoeWeights& full, const Tensor& hidden_all, std::int64_t begin,
                                     std::int64_t count, const std::shared_ptr<Communicator>& communicator,
                                     int rank, int device_index, const Tensor& expected,
                                     cudaStreamCaptureMode mode) {
  const MoeConfig config = graph_layer_config(rank, device_index);
  const std::int64_t width = config.hidden_size;
  LayerOptions options;
  options.communicator = communicator;
  FusedMoeLayer layer(config, options);
  MoeWeights weights = full;
  weights.w13 = gather_experts(full.w13, layer.local_expert_ids());
  weights.w2 = gather_experts(full.w2, layer.local_expert_ids());
  layer.set_weights(weights_on(weights, config.device));
  layer.finalize_weights();
  layer.reserve(count);
  TestStream stream;
  const Tensor input =
      to_device(Tensor::copy_of(hidden_all.view().slice_rows(begin, begin + count)), config.device);
  const Tensor eager = Tensor::empty(config.act_dtype, {count, width}, config.device);
  const Tensor replayed = Tensor::empty(config.act_dtype, {count, width}, config.device);
  if (count > 0) poison(eager, stream.get());
  layer.forward(input, eager, stream.context());
  stream.synchronize();
  cudaGraphExec_t graph = capture_graph(
      stream.get(), [&] { layer.forward(input, replayed, stream.context()); }, mode);
  GraphRun run;
  for (int replay = 0; replay < run.replays; ++replay) {
    if (count > 0) poison(replayed, stream.get());
    check_cuda(cudaGraphLaunch(graph, stream.get()), "cudaGraphLaunch");
    stream.synchronize();
    if (bitwise_equal(to_host(eager), to_host(replayed))) ++run.equal_replays;
  }
  check_cuda(cudaGraphExecDestroy(graph), "cudaGraphExecDestroy");
  run.error = 0.0;
  if (count == 0) return run;
  std::vector<double> reference(static_cast<std::size_t>(count * width));
  for (std::size_t i = 0; i < reference.size(); ++i) {
    reference[i] =
        load_element(expected.data(), expected.dtype(), begin * width + static_cast<std::int64_t>(i));
  }
  run.error = compare_to_reference(to_host(eager), reference).relative_error;
  return run;
}

// The single-GPU layer (local dispatch, the oracle's choice) on `device`: every token's output, on the CPU.
inline Tensor single_gpu_layer_output(const MoeWeights& full, const Tensor& hidden_all, int device_index) {
  MoeConfig config = make_config(8, 2, 64, 48);
  config.device = Device::cuda(device_index);
  FusedMoeLayer single(config);
  single.set_weights(weights_on(full, config.device));
  single.finalize_weights();
  const Tensor out = Tensor::empty(config.act_dtype, {hidden_all.size(0), config.hidden_size}, config.device);
  single.forward(to_device(hidden_all, config.device), out);
  return to_host(out);
}

}  // namespace fusedmoe::testing
