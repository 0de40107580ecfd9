// Expert parallelism on CUDA devices over NCCL: the cases, the single-device reference and one rank's run,
// shared by the single-process test (one thread per GPU, tests/cuda/nccl_ep_test.cpp) and the MPI test
// (one process per GPU, tests/mpi/nccl_mpi_test.cpp).
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>
#include <cstdint>

#include <exception>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/check.hpp"
#include "core/elements.hpp"
#include "cuda/cuda_testing.hpp"
#include "parallel/expert_map.hpp"
#include "testing/moe_case.hpp"

namespace fusedmoe::testing {

// Why `count` GPUs cannot run NCCL here ("" when they can).
inline std::string nccl_unavailable_reason(int count) {
  if (!nccl_available()) return "fusedmoe was built without NCCL";
  int devices = 0;
  const cudaError_t status = cudaGetDeviceCount(&devices);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    return str_cat("no CUDA device: cudaGetDeviceCount: ", cudaGetErrorString(status));
  }
  if (devices < count) return str_cat("needs ", count, " CUDA devices, this machine has ", devices);
  return {};
}

#define FUSEDMOE_REQUIRE_NCCL_GPUS(count)                                                     \
  do {                                                                                        \
    const std::string fusedmoe_reason_ = ::fusedmoe::testing::nccl_unavailable_reason(count); \
    if (!fusedmoe_reason_.empty()) GTEST_SKIP() << fusedmoe_reason_;                          \
  } while (0)

// Runs body(rank, communicator) on one thread per communicator, each with its GPU current, the way
// separate processes would; the thread drops its communicator when done, so all are destroyed
// concurrently. The first exception is rethrown here.
template <class Body>
void run_ranks(std::vector<std::shared_ptr<Communicator>> communicators, const std::vector<int>& devices,
               Body body) {
  std::vector<std::exception_ptr> failures(communicators.size());
  std::vector<std::thread> threads;
  for (std::size_t rank = 0; rank < communicators.size(); ++rank) {
    threads.emplace_back([&, rank, communicator = std::move(communicators[rank])]() mutable {
      try {
        check_cuda(cudaSetDevice(devices[rank]), "cudaSetDevice");
        body(static_cast<int>(rank), communicator);
      } catch (...) {
        failures[rank] = std::current_exception();
      }
      communicator.reset();
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const std::exception_ptr& failure : failures) {
    if (failure) std::rethrow_exception(failure);
  }
}

// A CPU Experts behind a device interface: apply() copies the dispatched tensors to the host, runs the CPU
// Experts there and copies the output back. Lets the device PrepareFinalize be checked without a CUDA
// expert-parallel backend.
class HostExperts final : public ExpertsModular {
 public:
  HostExperts(const MoeConfig& cpu_config, std::unique_ptr<Experts> inner)
      : config_(cpu_config), inner_(static_cast<ExpertsModular*>(inner.release())) {}
  std::string_view name() const override { return "host_experts"; }
  ActivationFormat format() const override { return inner_->format(); }
  WeightAndReduce weight_and_reduce() const override { return inner_->weight_and_reduce(); }
  std::size_t workspace_bytes(const ExpertsProblem&) const override { return 0; }
  void apply(const DispatchedTokens& dispatched, const ExpertWeights& weights, const TensorView& expert_out,
             WorkspaceArena&, const ExecContext& context) override {
    std::vector<Tensor> keep;
    auto host = [&](const TensorView& view) -> TensorView {
      if (!view.defined()) return view;
      keep.push_back(Tensor::empty(view.dtype(), view.shape()));
      copy_tensor(view, keep.back(), context);  // after the prepare step on the stream; waits
      return keep.back();
    };
    DispatchedTokens on_host = dispatched;
    on_host.hidden = host(dispatched.hidden);
    on_host.topk_ids = host(dispatched.topk_ids);
    on_host.topk_weights = host(dispatched.topk_weights);
    on_host.expert_num_tokens = host(dispatched.expert_num_tokens);
    on_host.slot_token = host(dispatched.slot_token);
    on_host.expert_map = host(dispatched.expert_map);
    ExpertsProblem problem = standard_problem(dispatched.hidden.size(0), config_);
    if (dispatched.format == ActivationFormat::batched) {
      problem.format = ActivationFormat::batched;
      problem.num_tokens = dispatched.hidden.size(1);
    }
    const Tensor out = Tensor::empty(expert_out.dtype(), expert_out.shape());
    const Tensor scratch = Tensor::empty(
        DType::uint8,
        {static_cast<std::int64_t>(std::max<std::size_t>(inner_->workspace_bytes(problem), 1))});
    WorkspaceArena arena(scratch.data(), scratch.nbytes(), Device::cpu());
    inner_->apply(on_host, weights, out, arena, ExecContext{.num_threads = 1});
    copy_tensor(out, expert_out, context);
  }

 private:
  MoeConfig config_;
  std::unique_ptr<ExpertsModular> inner_;
};

// skewed: 3 tokens in 4 go to experts 0, 1, 2 (hot experts), the rest follow the router.
enum class Scenario { uniform, zero_token_rank, all_to_one_rank, skewed };
// host_reference: the CPU reference Experts behind HostExperts (checks the device dispatch alone);
// cuda: the CUDA Experts of the dispatch's format (the real thing): cuda_fused for the standard format
// (allgather, all2all), cuda_batched for the batched one (all2all_batched).
enum class ExpertsUnderTest { host_reference, cuda };

struct EpCase {
  DispatchMode mode;
  ExpertPlacement placement;
  DType dtype;
  Scenario scenario;
  ExpertsUnderTest experts;
};

// The backend that runs a case, by format: a CUDA one, or a CPU reference (behind HostExperts).
inline std::string backend_id(const EpCase& c) {
  const bool batched = c.mode == DispatchMode::all2all_batched;
  if (c.experts == ExpertsUnderTest::cuda) return batched ? "cuda_batched" : "cuda_fused";
  return batched ? "cpu_reference_batched" : "cpu_reference";
}

inline const BackendInfo& backend_of(const EpCase& c) {
  return *find_backend(backend_id(c));
}

inline std::string describe(const EpCase& c) {
  const char* scenario = c.scenario == Scenario::uniform           ? "uniform"
                         : c.scenario == Scenario::zero_token_rank ? "zero_token_rank"
                         : c.scenario == Scenario::skewed          ? "skewed"
                                                                   : "all_to_one_rank";
  // host_reference_<mode>_..., cuda_fused_<mode>_... or cuda_batched_all2all_batched_...
  const std::string experts =
      c.experts == ExpertsUnderTest::host_reference ? "host_reference" : backend_id(c);
  return str_cat(experts, "_", to_string(c.mode), "_", to_string(c.placement), "_", to_string(c.dtype), "_",
                 scenario);
}

// All tokens and their routing (the same on every rank: fixed seeds), each rank's share, the parallel
// config of a rank, and the single-device output.
struct EpProblem {
  EpCase c;
  int ranks = 2;
  MoeConfig single;  // every expert, local dispatch of the case's format, on the CPU
  MoeWeights weights;
  Tensor hidden, ids, topk_weights;  // all tokens, on the CPU
  std::vector<std::int64_t> bounds;  // rank r holds tokens [bounds[r], bounds[r + 1])

  MoeConfig parallel(int rank, Device device) const {
    MoeConfig config = single;
    config.parallel = {.ep_size = ranks, .ep_rank = rank, .placement = c.placement, .dispatch = c.mode};
    config.device = device;
    config.validate();
    return config;
  }
};

inline EpProblem make_ep_problem(const EpCase& c, int ranks) {
  EpProblem p;
  p.c = c;
  p.ranks = ranks;
  const std::int64_t experts = 12, total = 37;
  const int k = 3;
  p.single = make_config(experts, k, 64, 40, c.dtype, c.dtype);
  p.single.parallel.dispatch =
      c.mode == DispatchMode::all2all_batched ? DispatchMode::local_batched : DispatchMode::local;
  p.weights = random_weights(p.single, 31);
  p.hidden = random_hidden(p.single, total, 32);
  Routing routing = make_routing(p.single, total, RoutingPattern::router, 33, p.weights, p.hidden);
  // Uneven split: rank r's share grows with r; zero_token_rank leaves rank 0 empty.
  p.bounds.assign(static_cast<std::size_t>(ranks + 1), 0);
  for (int r = 1; r <= ranks; ++r) p.bounds[r] = total * r * (r + 1) / (ranks * (ranks + 1));
  if (c.scenario == Scenario::zero_token_rank) p.bounds[1] = 0;
  if (c.scenario == Scenario::all_to_one_rank) {  // every slot to an expert of rank 0
    const std::vector<std::int32_t> rank0 = local_experts(experts, ranks, 0, c.placement);
    for (std::int64_t t = 0; t < total; ++t) {
      for (int slot = 0; slot < k; ++slot)
        routing.ids.data_as<std::int32_t>()[t * k + slot] = rank0[(t + slot) % rank0.size()];
    }
  }
  if (c.scenario == Scenario::skewed) {
    for (std::int64_t t = 0; t < total; ++t) {
      if (t % 4 == 3) continue;
      for (int slot = 0; slot < k; ++slot) routing.ids.data_as<std::int32_t>()[t * k + slot] = slot;
    }
  }
  p.ids = std::move(routing.ids);
  p.topk_weights = std::move(routing.weights);
  return p;
}

// Why the case cannot run on `device` here ("" when it can): the backend's own reason.
inline std::string ep_skip_reason(const EpProblem& p, Device device) {
  if (p.c.experts == ExpertsUnderTest::host_reference) return {};
  const MoeConfig config = p.parallel(0, device);
  const Support support = backend_of(p.c).supports(config, Platform::detect(device), dispatch_format(config));
  return support.ok ? std::string() : str_cat(backend_of(p.c).id, ": ", support.reason);
}

// Every token's output on one device (the CPU for host_reference, `device` for the CUDA Experts, behind the
// local dispatch of the case's format: local_batched runs on the device too), on the CPU.
inline Tensor single_device_output(const EpProblem& p, Device device) {
  MoeConfig config = p.single;
  if (p.c.experts == ExpertsUnderTest::host_reference) device = Device::cpu();
  config.device = device;
  const BackendInfo& backend = backend_of(p.c);
  const auto converted =
      backend.convert_weights(to_device(p.weights.w13, device), to_device(p.weights.w2, device), config);
  MoeKernel kernel(config, make_prepare_finalize(config), backend.make_experts(config));
  const Tensor out = Tensor::empty(config.act_dtype, {p.hidden.size(0), config.hidden_size}, device);
  kernel.forward(to_device(p.hidden, device), to_device(p.ids, device), to_device(p.topk_weights, device), {},
                 *converted, out);
  return to_device(out, Device::cpu());
}

// One rank's expert-parallel forward of its tokens on CUDA device `device` (a non-blocking stream, chunks of
// 8 tokens so that several collectives run); returns its relative error against `expected` (all tokens).
inline double run_ep_rank(const EpProblem& p, const std::shared_ptr<Communicator>& communicator, int rank,
                          int device_index, const Tensor& expected) {
  const Device device = Device::cuda(device_index);
  const MoeConfig config = p.parallel(rank, device);
  const std::int64_t begin = p.bounds[rank], end = p.bounds[rank + 1], tokens = end - begin;
  const std::vector<std::int32_t> mine = local_experts(config.num_experts, p.ranks, rank, p.c.placement);
  const Tensor w13 = gather_experts(p.weights.w13, mine), w2 = gather_experts(p.weights.w2, mine);
  const BackendInfo& backend = backend_of(p.c);
  std::shared_ptr<const ExpertWeights> converted;
  std::unique_ptr<Experts> experts;
  if (p.c.experts == ExpertsUnderTest::host_reference) {
    MoeConfig cpu = config;
    cpu.device = Device::cpu();
    converted = backend.convert_weights(w13, w2, cpu);
    experts = std::make_unique<HostExperts>(cpu, backend.make_experts(cpu));
  } else {
    converted = backend.convert_weights(to_device(w13, device), to_device(w2, device), config);
    experts = backend.make_experts(config);
  }
  MoeKernel kernel(config, make_prepare_finalize(config, communicator), std::move(experts),
                   {.max_chunk_tokens = 8});
  TestStream stream;
  const Tensor hidden = to_device(Tensor::copy_of(p.hidden.view().slice_rows(begin, end)), device);
  const Tensor ids = to_device(Tensor::copy_of(p.ids.view().slice_rows(begin, end)), device);
  const Tensor weights = to_device(Tensor::copy_of(p.topk_weights.view().slice_rows(begin, end)), device);
  const Tensor map = to_device(make_expert_map(config.num_experts, p.ranks, rank, p.c.placement), device);
  const Tensor out = Tensor::empty(config.act_dtype, {tokens, config.hidden_size}, device);
  if (tokens > 0) poison(out);
  kernel.forward(hidden, ids, weights, map, *converted, out, stream.context());
  stream.synchronize();
  if (tokens == 0) return 0.0;
  const Tensor result = to_host(out);
  std::vector<double> reference(static_cast<std::size_t>(tokens * config.hidden_size));
  for (std::size_t i = 0; i < reference.size(); ++i) {
    reference[i] = load_element(expected.data(), expected.dtype(), begin * config.hidden_size + i);
  }
  return compare_to_reference(result, reference).relative_error;
}

inline double ep_tolerance(DType dtype) {
  return dtype == DType::fp32 ? 1e-6 : 1e-2;
}

inline std::vector<EpCase> ep_device_cases() {
  std::vector<EpCase> cases;
  for (ExpertsUnderTest experts : {ExpertsUnderTest::host_reference, ExpertsUnderTest::cuda}) {
    for (DispatchMode mode :
         {DispatchMode::allgather, DispatchMode::all2all, DispatchMode::all2all_batched}) {
      for (ExpertPlacement placement : {ExpertPlacement::linear, ExpertPlacement::round_robin}) {
        // The CUDA Experts are bf16 only; the host reference also checks fp32 through the device paths.
        for (DType dtype : {DType::fp32, DType::bf16}) {
          if (experts == ExpertsUnderTest::cuda && dtype == DType::fp32) continue;
          for (Scenario scenario :
               {Scenario::uniform, Scenario::zero_token_rank, Scenario::all_to_one_rank, Scenario::skewed}) {
            cases.push_back({mode, placement, dtype, scenario, experts});
          }
        }
      }
    }
  }
  return cases;
}

}  // namespace fusedmoe::testing
