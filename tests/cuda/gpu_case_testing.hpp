// Shared by the CUDA Experts tests (cuda_fused, cuda_cutlass_grouped, cuda_cublas_grouped, cuda_batched): the
// edge cases that break grouped GEMMs, a run against the fp64 reference with NaN-poisoned outputs and a
// bitwise repeat, and a synthetic Hopper platform for supports() questions.
#pragma once

#include <gtest/gtest.h>
#include <cstdint>

#include <sstream>
#include <string>
#include <vector>

#include "cuda/cuda_testing.hpp"

namespace fusedmoe::testing {

enum class GpuIds {
  pattern,       // make_routing with the case's pattern
  duplicates,    // every slot of a token names the same expert, shared by runs of tokens
  out_of_range,  // some ids are -1 or >= E (contribute nothing on the GPU)
};

struct GpuCase {
  std::string label;
  std::int64_t tokens, experts, hidden, intermediate;
  int top_k;
  Activation activation = Activation::silu;
  RoutingPattern pattern = RoutingPattern::router;
  bool expert_map = false;  // odd experts are not local (-1)
  GpuIds ids = GpuIds::pattern;
  bool cpu_weights = false;  // convert from CPU weights (else from device weights)
  std::int64_t max_chunk = 8192;
  DispatchMode dispatch = DispatchMode::local;  // local_batched: the batched format (cuda_batched)

  std::string describe() const {
    std::ostringstream text;
    text << label << "(M=" << tokens << ",E=" << experts << ",k=" << top_k << ",H=" << hidden
         << ",I=" << intermediate << "," << to_string(activation) << (expert_map ? ",map" : "")
         << ",chunk=" << max_chunk << "," << to_string(dispatch) << ")";
    return text.str();
  }
};

inline void PrintTo(const GpuCase& c, std::ostream* os) {
  *os << c.describe();
}

// H and I are multiples of 8 except in the cases named odd_* (which cuda_cutlass_grouped declines).
inline std::vector<GpuCase> grouped_cases() {
  return {
      {"decode_m1", 1, 8, 64, 32, 2},
      {"decode_m1_k8_e128", 1, 128, 256, 96, 8},
      {"not_a_tile_multiple", 133, 8, 136, 72, 2},
      {"e256", 300, 256, 128, 64, 8},
      {"zero_token_expert", 19, 8, 32, 16, 3, Activation::silu, RoutingPattern::skip_last},
      {"all_on_one_expert", 21, 8, 32, 16, 2, Activation::silu, RoutingPattern::one_hot_expert},
      {"all_on_one_expert_k1", 1000, 6, 128, 64, 1, Activation::silu, RoutingPattern::one_hot_expert},
      {"expert_map", 29, 10, 40, 24, 3, Activation::silu, RoutingPattern::router, true},
      {"expert_map_large", 517, 64, 128, 64, 6, Activation::silu, RoutingPattern::router, true},
      {"duplicate_ids", 45, 12, 64, 48, 3, Activation::silu, RoutingPattern::router, false,
       GpuIds::duplicates},
      {"out_of_range_ids", 23, 8, 64, 32, 3, Activation::silu, RoutingPattern::router, false,
       GpuIds::out_of_range},
      {"gelu", 15, 8, 48, 40, 2, Activation::gelu},
      {"cpu_weights", 33, 8, 96, 40, 2, Activation::silu, RoutingPattern::router, false, GpuIds::pattern,
       true},
      {"chunked", 70, 8, 32, 16, 2, Activation::silu, RoutingPattern::router, false, GpuIds::pattern, false,
       16},
      {"many_sort_tiles", 2048, 16, 256, 128, 4},  // 8192 pairs: eight tiles of the counting sort
      {"e1100", 64, 1100, 32, 16, 4},              // the sort's one-block scan over two chunks of experts
      {"wide", 64, 8, 1024, 512, 2},
      {"odd_sizes", 37, 16, 67, 29, 4},
      {"odd_hidden", 20, 8, 36, 24, 2},
      {"empty_batch", 0, 8, 32, 16, 2},
  };
}

inline MoeConfig gpu_case_config(const GpuCase& c) {
  MoeConfig config =
      make_config(c.experts, c.top_k, c.hidden, c.intermediate, DType::bf16, DType::bf16, c.activation);
  config.device = kGpu;
  config.parallel.dispatch = c.dispatch;
  return config;
}

inline const BackendInfo& registered_backend(std::string_view id) {
  const BackendInfo* backend = find_backend(id);
  if (backend == nullptr) throw InternalError("backend " + std::string(id) + " is not registered");
  return *backend;
}

inline Tensor odd_experts_not_local(std::int64_t experts) {
  Tensor map = Tensor::empty(DType::int32, {experts});
  for (std::int64_t e = 0; e < experts; ++e)
    map.data_as<std::int32_t>()[e] = e % 2 ? -1 : static_cast<std::int32_t>(e);
  return map;
}

// Routing for a case, on the CPU; `reference_*` is what the fp64 reference sees (an out-of-range id there
// becomes expert 0 with weight 0: it contributes nothing, as on the GPU).
struct GpuCaseRouting {
  Tensor ids, weights, reference_ids, reference_weights;
};

inline GpuCaseRouting gpu_case_routing(const GpuCase& c, const MoeConfig& config, const MoeWeights& weights,
                                       const Tensor& hidden) {
  Routing routing = make_routing(config, c.tokens, c.pattern, 42, weights, hidden);
  GpuCaseRouting result{routing.ids, routing.weights, routing.ids, routing.weights};
  auto* ids = routing.ids.data_as<std::int32_t>();
  if (c.ids == GpuIds::duplicates) {
    for (std::int64_t i = 0; i < c.tokens * c.top_k; ++i) {
      ids[i] =
          static_cast<std::int32_t>((i / c.top_k / 4) % c.experts);  // 4 tokens in a row share one expert
    }
  }
  if (c.ids == GpuIds::out_of_range) {
    result.reference_ids = routing.ids.clone();
    result.reference_weights = routing.weights.clone();
    for (std::int64_t i = 0; i < c.tokens * c.top_k; i += 3) {
      ids[i] = i % 2 ? -1 : static_cast<std::int32_t>(c.experts + i);
      result.reference_ids.data_as<std::int32_t>()[i] = 0;
      result.reference_weights.data_as<float>()[i] = 0.0f;
    }
  }
  return result;
}

// The case on `backend` (skipping, with the reason, when it declines): within bf16 tolerance of fp64, every
// output written (the output starts as NaN), and a second run bitwise equal to the first.
inline void expect_matches_reference_and_repeats(const BackendInfo& backend, const GpuCase& c) {
  SCOPED_TRACE(backend.id + " " + c.describe());
  const MoeConfig config = gpu_case_config(c);
  FUSEDMOE_REQUIRE_BACKEND(backend, config);
  const MoeWeights weights = random_weights(config, 7);
  const Tensor hidden = random_hidden(config, c.tokens, 8);
  const GpuCaseRouting routing = gpu_case_routing(c, config, weights, hidden);
  const Tensor map = c.expert_map ? odd_experts_not_local(c.experts) : Tensor();

  BuiltKernel built =
      build_kernel(backend, config, c.cpu_weights ? weights : weights_on(weights), c.max_chunk);
  const Tensor gpu_hidden = to_device(hidden), gpu_ids = to_device(routing.ids);
  const Tensor gpu_weights = to_device(routing.weights), gpu_map = to_device(map);
  const Tensor first = empty_poisoned(DType::bf16, {c.tokens, c.hidden});
  built.kernel->forward(gpu_hidden, gpu_ids, gpu_weights, gpu_map, *built.weights, first);
  const Tensor out = to_host(first);

  const std::vector<double> reference =
      fp64_moe_reference(config, weights, hidden, routing.reference_ids, routing.reference_weights, map);
  const ErrorStats stats = compare_to_reference(out, reference);
  EXPECT_EQ(stats.non_finite, 0) << "outputs left unwritten (still NaN) or overflowed";
  EXPECT_LE(stats.relative_error, tolerance_for(DType::bf16)) << "max abs error " << stats.max_abs_error;

  const Tensor second = empty_poisoned(DType::bf16, {c.tokens, c.hidden});
  built.kernel->forward(gpu_hidden, gpu_ids, gpu_weights, gpu_map, *built.weights, second);
  EXPECT_TRUE(bitwise_equal(out, to_host(second))) << "two runs differ";
}

// A Hopper that exists only on paper, for supports() questions without a GPU.
inline Platform synthetic_h100() {
  Platform platform;
  platform.device = kGpu;
  platform.built_with_cuda = true;
  platform.cuda.available = true;
  platform.cuda.compute_capability = 90;
  platform.cuda.num_sms = 132;
  platform.cuda.shared_memory_per_block = 227 * 1024;
  platform.cuda.name = "synthetic H100";
  return platform;
}

}  // namespace fusedmoe::testing
