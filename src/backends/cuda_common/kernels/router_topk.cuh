// The GPU router: one block per token, the token's E scores in shared memory, top-k by k rounds of a
// block-wide argmax under the CPU router's order (higher score first, then lower id). Any E that fits in
// shared memory (8192 on sm_80+); nothing is instantiated per expert count.
#pragma once

#include <cfloat>
#include <climits>
#include <cstdint>

#include "backends/cuda_common/kernels/elements.cuh"

namespace fusedmoe::cuda {

// RoutingRecipe values, as kernel parameters.
enum class RouterRecipe : int {
  softmax_topk = 0,
  softmax_topk_renorm,
  topk_softmax,
  softmax_grouped,
  sigmoid_grouped_bias,
  llama4_top1_sigmoid
};

struct RouterParams {
  const void* logits;  // [M, E]
  ElementType logits_type;
  const float* bias;  // [E] or nullptr
  std::int32_t* ids;  // [M, k]
  float* weights;     // [M, k]
  int num_experts;
  int top_k;
  RouterRecipe recipe;
  int num_groups;
  int topk_group;
  bool renormalize;
  float routed_scaling_factor;
};

inline constexpr int kRouterMaxWarps = 32;

// Byte offsets of the router's shared-memory arrays (host and device agree on them).
struct RouterSmemLayout {
  int scores, selection, group_scores, chosen, chosen_weights, scratch, result, flags, group_flags, bytes;
};

__host__ __device__ inline RouterSmemLayout router_smem_layout(int num_experts, int num_groups, int top_k) {
  auto align = [](int offset) { return (offset + 15) / 16 * 16; };
  RouterSmemLayout layout{};
  int offset = 0;
  layout.scores = offset;
  offset = align(offset + num_experts * 4);
  layout.selection = offset;
  offset = align(offset + num_experts * 4);
  layout.group_scores = offset;
  offset = align(offset + num_groups * 4);
  layout.chosen = offset;
  offset = align(offset + top_k * 4);
  layout.chosen_weights = offset;
  offset = align(offset + top_k * 4);
  layout.scratch = offset;
  offset = align(offset + kRouterMaxWarps * 8);
  layout.result = offset;
  offset = align(offset + 16);
  layout.flags = offset;
  offset = align(offset + num_experts);
  layout.group_flags = offset;
  offset = align(offset + num_groups);
  layout.bytes = offset;
  return layout;
}

// The router's total order: a before b.
__device__ __forceinline__ bool ranks_before(float value_a, int index_a, float value_b, int index_b) {
  return value_a > value_b || (value_a == value_b && index_a < index_b);
}

struct ArgBest {
  float value;
  int index;
};

// Flags: bit 0 = eligible, bit 1 = already chosen; an entry competes when flags == 1.
constexpr unsigned char kEligible = 1, kChosen = 2;

// The best competing entry of values[0, count) under ranks_before; every thread gets it.
// Ends with a barrier, so the caller may update flags right after.
__device__ inline int block_argbest(const float* values, const unsigned char* flags, int count,
                                    ArgBest* scratch, int* result) {
  ArgBest best{-INFINITY, INT_MAX};
  for (int index = threadIdx.x; index < count; index += blockDim.x) {
    if (flags[index] != kEligible) continue;
    const float value = values[index];
    if (ranks_before(value, index, best.value, best.index)) best = {value, index};
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    const float other_value = __shfl_down_sync(0xffffffffu, best.value, offset);
    const int other_index = __shfl_down_sync(0xffffffffu, best.index, offset);
    if (ranks_before(other_value, other_index, best.value, best.index)) best = {other_value, other_index};
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, num_warps = blockDim.x / 32;
  if (lane == 0) scratch[warp] = best;
  __syncthreads();
  if (warp == 0) {
    best = lane < num_warps ? scratch[lane] : ArgBest{-INFINITY, INT_MAX};
    for (int offset = 16; offset > 0; offset /= 2) {
      const float other_value = __shfl_down_sync(0xffffffffu, best.value, offset);
      const int other_index = __shfl_down_sync(0xffffffffu, best.index, offset);
      if (ranks_before(other_value, other_index, best.value, best.index)) best = {other_value, other_index};
    }
    if (lane == 0) *result = best.index;
  }
  __syncthreads();
  const int chosen = *result;
  __syncthreads();  // everyone has read *result before it is reused
  return chosen;
}

// Max of values[0, count) (order-independent), for every thread.
__device__ inline float block_max(const float* values, int count, ArgBest* scratch, int* result) {
  float best = -FLT_MAX;
  for (int index = threadIdx.x; index < count; index += blockDim.x) best = fmaxf(best, values[index]);
  for (int offset = 16; offset > 0; offset /= 2)
    best = fmaxf(best, __shfl_down_sync(0xffffffffu, best, offset));
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, num_warps = blockDim.x / 32;
  if (lane == 0) scratch[warp].value = best;
  __syncthreads();
  if (warp == 0) {
    best = lane < num_warps ? scratch[lane].value : -FLT_MAX;
    for (int offset = 16; offset > 0; offset /= 2)
      best = fmaxf(best, __shfl_down_sync(0xffffffffu, best, offset));
    if (lane == 0) *reinterpret_cast<float*>(result) = best;
  }
  __syncthreads();
  const float value = *reinterpret_cast<const float*>(result);
  __syncthreads();
  return value;
}

// In-place softmax over values[0, count) with the CPU's roundings: max, exp(x - max), a sequential sum
// (one thread, in index order, as the CPU adds), then IEEE division.
__device__ inline void block_softmax(float* values, int count, ArgBest* scratch, int* result) {
  const float max_value = block_max(values, count, scratch, result);
  for (int index = threadIdx.x; index < count; index += blockDim.x) {
    values[index] = exp_like_cpu(__fsub_rn(values[index], max_value));
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    float sum = 0.0f;
#pragma unroll 8
    for (int index = 0; index < count; ++index) sum = __fadd_rn(sum, values[index]);
    *reinterpret_cast<float*>(result) = sum;
  }
  __syncthreads();
  const float sum = *reinterpret_cast<const float*>(result);
  for (int index = threadIdx.x; index < count; index += blockDim.x)
    values[index] = __fdiv_rn(values[index], sum);
  __syncthreads();
}

__global__ void route_kernel(RouterParams params) {
#if defined(__CUDA_ARCH__)
  extern __shared__ __align__(16) unsigned char shared[];
  const int num_experts = params.num_experts, top_k = params.top_k, num_groups = params.num_groups;
  const RouterSmemLayout layout = router_smem_layout(num_experts, num_groups, top_k);
  auto* scores = reinterpret_cast<float*>(shared + layout.scores);
  auto* selection_buffer = reinterpret_cast<float*>(shared + layout.selection);
  auto* group_scores = reinterpret_cast<float*>(shared + layout.group_scores);
  auto* chosen = reinterpret_cast<int*>(shared + layout.chosen);
  auto* chosen_weights = reinterpret_cast<float*>(shared + layout.chosen_weights);
  auto* scratch = reinterpret_cast<ArgBest*>(shared + layout.scratch);
  auto* result = reinterpret_cast<int*>(shared + layout.result);
  unsigned char* flags = shared + layout.flags;
  unsigned char* group_flags = shared + layout.group_flags;

  const std::int64_t token = blockIdx.x;
  for (int expert = threadIdx.x; expert < num_experts; expert += blockDim.x) {
    scores[expert] = sanitize(load_as_float(params.logits, params.logits_type, token * num_experts + expert));
    flags[expert] = kEligible;
  }
  __syncthreads();

  // Scores, and what the selection ranks (the scores themselves unless noted).
  const float* selection = scores;
  const RouterRecipe recipe = params.recipe;
  switch (recipe) {
    case RouterRecipe::softmax_topk:
    case RouterRecipe::softmax_topk_renorm:
    case RouterRecipe::softmax_grouped:
      block_softmax(scores, num_experts, scratch, result);
      break;
    case RouterRecipe::sigmoid_grouped_bias:
      for (int expert = threadIdx.x; expert < num_experts; expert += blockDim.x) {
        const float score = sigmoid_like_cpu(scores[expert]);
        scores[expert] = score;
        selection_buffer[expert] =
            params.bias != nullptr ? __fadd_rn(score, sanitize(params.bias[expert])) : score;
      }
      selection = selection_buffer;
      __syncthreads();
      break;
    case RouterRecipe::topk_softmax:
    case RouterRecipe::llama4_top1_sigmoid:
      break;  // rank the logits themselves
  }

  // Grouped recipes: keep the experts of the topk_group best groups (group score: max, or the sum of
  // the best two with a correction bias), ties to the lower group id.
  if (recipe == RouterRecipe::softmax_grouped || recipe == RouterRecipe::sigmoid_grouped_bias) {
    const int group_size = num_experts / num_groups;
    const bool sum_of_top2 = recipe == RouterRecipe::sigmoid_grouped_bias && params.bias != nullptr;
    for (int group = threadIdx.x; group < num_groups; group += blockDim.x) {
      float best = -FLT_MAX, second = -FLT_MAX;
      for (int offset = 0; offset < group_size; ++offset) {
        const float value = selection[group * group_size + offset];
        if (value > best) {
          second = best;
          best = value;
        } else if (value > second) {
          second = value;
        }
      }
      group_scores[group] = sum_of_top2 && group_size >= 2 ? __fadd_rn(best, second) : best;
      group_flags[group] = kEligible;
    }
    __syncthreads();
    for (int rank = 0; rank < params.topk_group; ++rank) {
      const int group = block_argbest(group_scores, group_flags, num_groups, scratch, result);
      if (threadIdx.x == 0) group_flags[group] = kEligible | kChosen;
      __syncthreads();
    }
    for (int expert = threadIdx.x; expert < num_experts; expert += blockDim.x) {
      flags[expert] = group_flags[expert / group_size] == (kEligible | kChosen) ? kEligible : 0;
    }
    __syncthreads();
  }

  for (int slot = 0; slot < top_k; ++slot) {
    const int expert = block_argbest(selection, flags, num_experts, scratch, result);
    if (threadIdx.x == 0) {
      chosen[slot] = expert;
      flags[expert] = kEligible | kChosen;
    }
    __syncthreads();
  }

  // Weights: k values, one thread, in the CPU's order of operations.
  if (threadIdx.x == 0) {
    bool renormalize = false;
    switch (recipe) {
      case RouterRecipe::softmax_topk:
      case RouterRecipe::softmax_topk_renorm:
      case RouterRecipe::softmax_grouped:
      case RouterRecipe::sigmoid_grouped_bias:
        for (int slot = 0; slot < top_k; ++slot) chosen_weights[slot] = scores[chosen[slot]];
        renormalize = recipe == RouterRecipe::softmax_topk_renorm ||
                      (recipe != RouterRecipe::softmax_topk && params.renormalize);
        break;
      case RouterRecipe::topk_softmax: {
        float max_value = -FLT_MAX;
        for (int slot = 0; slot < top_k; ++slot) max_value = fmaxf(max_value, scores[chosen[slot]]);
        float sum = 0.0f;
        for (int slot = 0; slot < top_k; ++slot) {
          chosen_weights[slot] = exp_like_cpu(__fsub_rn(scores[chosen[slot]], max_value));
          sum = __fadd_rn(sum, chosen_weights[slot]);
        }
        for (int slot = 0; slot < top_k; ++slot) chosen_weights[slot] = __fdiv_rn(chosen_weights[slot], sum);
        break;
      }
      case RouterRecipe::llama4_top1_sigmoid:
        chosen_weights[0] = sigmoid_like_cpu(scores[chosen[0]]);
        break;
    }
    if (renormalize) {
      float sum = 0.0f;
      for (int slot = 0; slot < top_k; ++slot) sum = __fadd_rn(sum, chosen_weights[slot]);
      // The tiny term keeps an all-zero sigmoid row finite (as on the CPU).
      const float denominator = recipe == RouterRecipe::sigmoid_grouped_bias ? __fadd_rn(sum, 1e-20f) : sum;
      for (int slot = 0; slot < top_k; ++slot)
        chosen_weights[slot] = __fdiv_rn(chosen_weights[slot], denominator);
    }
    if (params.routed_scaling_factor != 1.0f) {
      for (int slot = 0; slot < top_k; ++slot) {
        chosen_weights[slot] = __fmul_rn(chosen_weights[slot], params.routed_scaling_factor);
      }
    }
  }
  __syncthreads();
  for (int slot = threadIdx.x; slot < top_k; slot += blockDim.x) {
    params.ids[token * top_k + slot] = chosen[slot];
    params.weights[token * top_k + slot] = chosen_weights[slot];
  }
#endif
}

}  // namespace fusedmoe::cuda
