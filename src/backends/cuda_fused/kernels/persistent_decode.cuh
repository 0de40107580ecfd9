// cuda_fused's persistent decode path (sm_90a): the whole layer in one launch for small batches
// (M * k <= kPersistentMaxPairs), built so that the weights stream once at full bandwidth with no kernel
// boundary in between.
//
// One block per SM, kPersistentWarps warps per block, and every warp is its own pipeline: its lane 0 requests
// 4 KiB weight boxes (32 rows x one 64-deep k-panel, 128-byte swizzled) by TMA into a ring of
// kPersistentDepth slots private to the warp, and the warp multiplies each box with ldmatrix + mma.sync
// (weight rows are the mma's M side, the expert's tokens its N side, 8 per fragment).
//
// The work is two flat sequences of boxes, cut into equal contiguous ranges, one per warp of the grid:
//   GEMM1: units (active expert a, 32-row group of w13: 16 gate + 16 up rows) x H_k / 64 panels;
//   GEMM2: units (active expert a, 32 output columns of w2) x I_pad / 64 panels.
// A warp does its GEMM1 range, then its GEMM2 range; its ring runs on across the boundary, so GEMM2's first
// boxes stream while GEMM1 finishes elsewhere. A unit cut between warps is finished by the last of them to
// arrive (a counter per unit): it adds the others' partial sums, stored in global memory, in warp order, so
// the result does not depend on who came last. Finishing a GEMM1 unit writes act(gate) * up for the expert's
// tokens (bf16) and counts one more unit done for that expert; a GEMM2 warp waits until all of its expert's
// units are done before it reads the intermediate. Finishing a GEMM2 unit writes routing weight x sum for
// each of the expert's (token, slot) pairs (fp32) and counts one more expert done for those 32 columns; the
// last expert sums every token's slots in slot order and writes the bf16 output. Deterministic throughout.
//
// The counters live in memory the Experts own (zeroed once); every counter is back at zero when the kernel
// ends (unit and column counters by whoever finished them, expert counters by the last block to exit), so
// forwards of one Experts object must run in stream order. The launch is cooperative (every block resident
// at once, whatever else runs on the GPU), so the waits always end; a wait that lasts 10 s traps instead of
// hanging. Results are bitwise repeatable on one device (the split depends on its SM count and the batch).
#pragma once

#include <cuda.h>
#include <cuda_bf16.h>

#include <climits>
#include <cstdint>
#include <type_traits>

#include "backends/cuda_common/kernels/grid_dependency.cuh"
#include "backends/cuda_fused/kernels/sm80_bf16_grouped_gemm.cuh"
#include "backends/cuda_fused/kernels/sm90_async_ops.cuh"
#include "backends/cuda_fused/kernels/sm90_wgmma_grouped_gemm.cuh"

namespace fusedmoe::cuda_fused {

inline constexpr int kPersistentMaxPairs = 64;    // M * k per call
inline constexpr int kPersistentMinBoxRows = 32;  // counters are sized for the smallest box
inline constexpr int kPersistentRingBytes = 192 * 1024;
inline constexpr int kPersistentMaxWarps = 8;

struct PersistentRouting {
  int local_of_pair[kPersistentMaxPairs];     // local expert of each (token, slot) pair, -1 if none here
  int sorted_pairs[kPersistentMaxPairs];      // the local pairs by (expert, pair)
  int active_expert[kPersistentMaxPairs];     // local id of active expert a (ascending)
  int active_begin[kPersistentMaxPairs + 1];  // its pairs: sorted_pairs[begin[a] .. begin[a + 1])
  int num_active;
};

// A kernel's shape: Frags token fragments (8 pairs each) per expert, boxes of BoxRows weight rows (BoxRows /
// 32 gate/up row groups of w13 or BoxRows output columns of w2) x one k-panel, Warps pipelines per block,
// each with a ring of kPersistentRingBytes / Warps.
template <int Frags, int BoxRows, int Warps>
struct PersistentShape {
  static constexpr int kFrags = Frags, kBoxRows = BoxRows, kWarps = Warps;
  static constexpr int kRowFrags = BoxRows / 16;
  static constexpr int kBoxBytes = BoxRows * 64 * 2;
  static constexpr int kDepth = kPersistentRingBytes / (Warps * kBoxBytes);
  static constexpr int kSlotFloats = kRowFrags * Frags * 4 * 32;  // one warp's partial sums of a unit
  struct Shared {
    unsigned long long full[Warps][kDepth];  // one mbarrier per ring slot
    PersistentRouting routing;
  };
  // The ring first (1024-byte aligned for the swizzle), then the control block; + alignment slack.
  static constexpr int kSharedBytes = kPersistentRingBytes + sizeof(Shared) + 1024;
  static_assert(BoxRows % 32 == 0 && BoxRows <= 256 && Warps <= kPersistentMaxWarps && kDepth >= 2,
                "a persistent shape: whole row groups, a ring of two slots or more");
  static_assert(kRowFrags * Frags * 4 <= 64, "accumulators beyond 64 registers spill");
};

// Counters the kernel leaves at zero (see the file comment): units of GEMM1 [kPersistentMaxPairs * groups1],
// units of GEMM2 [kPersistentMaxPairs * groups2], expert done [kPersistentMaxPairs], column groups done
// [groups2], blocks exited [1].
struct PersistentCounters {
  unsigned* gemm1_units;
  unsigned* gemm2_units;
  unsigned* expert_done;
  unsigned* columns_done;
  unsigned* blocks_exited;
};
constexpr std::int64_t persistent_counter_count(std::int64_t groups1, std::int64_t groups2) {
  return kPersistentMaxPairs * (groups1 + groups2 + 1) + groups2 + 1;
}

struct PersistentParams {
  const std::int32_t* topk_ids;    // [M * k] global ids
  const std::int32_t* expert_map;  // [E] global -> local, -1 = not here; nullptr = identity
  const float* topk_weights;       // [M * k]
  int num_experts;
  int num_local_experts;
  int num_tokens;
  int top_k;
  const bf16* hidden;  // [M, lda], 4-byte aligned rows
  std::int64_t lda;
  std::int64_t a_columns;  // columns holding data (a multiple of 8); later ones read as zero
  int groups1;             // 2 I_pad / BoxRows: GEMM1 units per expert
  int panels1;             // H_k / 64
  int groups2;             // ceil(H / BoxRows): GEMM2 units per expert
  int panels2;             // I_pad / 64
  bf16* intermediate;      // [M * k, ldi]
  std::int64_t ldi;        // I_pad
  float* partials1;        // [warps of the grid * 2][kSlotFloats]: a warp's first and last unit's sums
  float* partials2;
  float* pair_rows;  // [M * k, groups2 * BoxRows] fp32: routing weight x GEMM2 per pair
  bf16* out;         // [M, hidden_size]
  std::int64_t hidden_size;
  int activation;  // 0 = SiLU, 1 = GELU
  // Boxes a warp has requested at a time, counting the one it multiplies (1: the next box is requested once
  // this one is multiplied); capped by the ring's depth.
  int lookahead;
  PersistentCounters counters;
};

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)

__device__ __forceinline__ std::uint64_t global_timer_ns() {
  std::uint64_t now;
  asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(now));
  return now;
}

// Lane 0 polls until *counter >= target, then every lane reads it once more with acquire semantics (so each
// lane's later loads see what the counted writers wrote). Traps after ~10 s: only blocks that are not
// resident together could wait that long, and a trap reports an error where a hang would not.
__device__ __forceinline__ void warp_wait_at_least(const unsigned* counter, unsigned target) {
  if (threadIdx.x % 32 == 0 && load_acquire_gpu(counter) < target) {
    const std::uint64_t start = global_timer_ns();
    while (load_acquire_gpu(counter) < target) {
      __nanosleep(64);
      if (global_timer_ns() - start > 10'000'000'000ull) __trap();
    }
  }
  __syncwarp();
  (void)load_acquire_gpu(counter);
}

// One increment by lane 0 after every lane's earlier stores: the warp barrier orders the other lanes' stores
// before lane 0's fence, which orders them before the increment (as CUTLASS's GenericBarrier does with a
// block barrier). Returns the counter's old value to every lane.
__device__ __forceinline__ unsigned warp_count_in(unsigned* counter) {
  __syncwarp();
  unsigned old = 0;
  if (threadIdx.x % 32 == 0) {
    __threadfence();
    old = atomicAdd(counter, 1u);
  }
  return __shfl_sync(0xffffffffu, old, 0);
}

// Warp 0 lists the batch's local pairs by (expert, pair) and the active experts in ascending local id.
__device__ __forceinline__ void persistent_route(const PersistentParams& params, PersistentRouting& shared) {
  const int lane = threadIdx.x % 32;
  const int pairs = params.num_tokens * params.top_k;
  int key[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int q = lane + 32 * i;
    int local = -1;
    if (q < pairs) {
      const int id = params.topk_ids[q];
      if (id >= 0 && id < params.num_experts) {
        local = params.expert_map != nullptr ? params.expert_map[id] : id;
        if (local >= params.num_local_experts) local = -1;
      }
      shared.local_of_pair[q] = local;
    }
    key[i] = local >= 0 ? local * kPersistentMaxPairs + q : INT_MAX;  // unique for every local pair
  }
  int rank[2] = {0, 0};
#pragma unroll
  for (int source = 0; source < 2; ++source) {
    for (int from = 0; from < 32; ++from) {
      const int other = __shfl_sync(0xffffffffu, key[source], from);
      rank[0] += other < key[0];
      rank[1] += other < key[1];
    }
  }
  int valid = 0;
#pragma unroll
  for (int i = 0; i < 2; ++i) valid += __popc(__ballot_sync(0xffffffffu, key[i] != INT_MAX));
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    if (key[i] != INT_MAX) shared.sorted_pairs[rank[i]] = key[i] % kPersistentMaxPairs;
  }
  __syncwarp();
  const unsigned up_to_me = 0xffffffffu >> (31 - lane);
  int before = 0;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int position = lane + 32 * i;
    int expert = -1;
    bool first = false;
    if (position < valid) {
      expert = shared.local_of_pair[shared.sorted_pairs[position]];
      first = position == 0 || shared.local_of_pair[shared.sorted_pairs[position - 1]] != expert;
    }
    const unsigned mask = __ballot_sync(0xffffffffu, first);
    if (first) {
      const int active = before + __popc(mask & up_to_me) - 1;
      shared.active_expert[active] = expert;
      shared.active_begin[active] = position;
    }
    before += __popc(mask);
  }
  if (lane == 0) {
    shared.active_begin[before] = valid;
    shared.num_active = before;
  }
}

// The warp of the grid whose range holds box `box` of a sequence of `boxes` cut into `warps` ranges (range
// w = [w * boxes / warps, (w + 1) * boxes / warps); the last of several warps with the same start).
__device__ __forceinline__ std::int64_t range_owner(std::int64_t box, std::int64_t boxes,
                                                    std::int64_t warps) {
  return ((box + 1) * warps - 1) / boxes;
}
__device__ __forceinline__ std::int64_t range_start(std::int64_t warp, std::int64_t boxes,
                                                    std::int64_t warps) {
  return warp * boxes / warps;
}

template <class Shape>
struct PersistentAccumulators {
  // [16-row fragment of the box][token fragment][mma register]; in GEMM1 fragments 2q and 2q + 1 are the
  // gate and up rows of row group q.
  float value[Shape::kRowFrags][Shape::kFrags][4];
  // Calls visit(value, offset) for every value, where offset is its float in a warp's partial-sum slot
  // (lane-minor, so a warp's stores and loads of one value are coalesced).
  template <class Visit>
  __device__ __forceinline__ void for_each(int lane, Visit&& visit) {
#pragma unroll
    for (int h = 0; h < Shape::kRowFrags; ++h) {
#pragma unroll
      for (int f = 0; f < Shape::kFrags; ++f) {
#pragma unroll
        for (int r = 0; r < 4; ++r) visit(value[h][f][r], ((h * Shape::kFrags + f) * 4 + r) * 32 + lane);
      }
    }
  }
  __device__ __forceinline__ void zero() {
    for_each(0, [](float& v, int) { v = 0.0f; });
  }
};

// One of the two GEMMs as seen by a warp: its range of boxes and how a unit is finished.
struct PersistentPhase {
  std::int64_t begin, end;  // this warp's boxes
  std::int64_t boxes;       // all boxes of the phase
  int panels;               // boxes per unit
  int groups;               // units per active expert
  float* partials;
  unsigned* unit_counters;
};

// The partial sums of unit `unit` that warp `warp` stored (slot 0: the unit of its first box, else slot 1).
__device__ __forceinline__ std::int64_t partial_slot(std::int64_t warp, std::int64_t unit,
                                                     const PersistentPhase& phase, std::int64_t warps) {
  const std::int64_t first_unit = range_start(warp, phase.boxes, warps) / phase.panels;
  return 2 * warp + (unit == first_unit ? 0 : 1);
}

// Called by every lane when this warp's last box of `unit` is multiplied. Returns true when the warp holds
// the unit's complete sums in `acc` (it did the whole unit, or it arrived last and added every warp's part
// in warp order); false when another warp finishes it.
template <class Shape>
__device__ bool persistent_complete_unit(PersistentAccumulators<Shape>& acc, std::int64_t unit,
                                         const PersistentPhase& phase, std::int64_t warp,
                                         std::int64_t warps) {
  const int lane = threadIdx.x % 32;
  const std::int64_t unit_begin = unit * phase.panels, unit_end = unit_begin + phase.panels;
  if (phase.begin <= unit_begin && phase.end >= unit_end) return true;
  float* mine = phase.partials + partial_slot(warp, unit, phase, warps) * Shape::kSlotFloats;
  acc.for_each(lane, [&](float& v, int offset) { __stcg(mine + offset, v); });
  const std::int64_t first = range_owner(unit_begin, phase.boxes, warps);
  const std::int64_t last = range_owner(unit_end - 1, phase.boxes, warps);
  unsigned contributors = 0;
  for (std::int64_t w = first; w <= last; ++w)
    contributors += range_start(w, phase.boxes, warps) != range_start(w + 1, phase.boxes, warps);
  if (warp_count_in(&phase.unit_counters[unit]) != contributors - 1) return false;
  __threadfence();
  acc.zero();
  for (std::int64_t w = first; w <= last; ++w) {
    if (range_start(w, phase.boxes, warps) == range_start(w + 1, phase.boxes, warps)) continue;
    const float* theirs = phase.partials + partial_slot(w, unit, phase, warps) * Shape::kSlotFloats;
    acc.for_each(lane, [&](float& v, int offset) { v += __ldcg(theirs + offset); });
  }
  if (lane == 0) phase.unit_counters[unit] = 0;  // for the next forward: nobody counts this unit again
  return true;
}

#endif  // sm_90a

template <class Shape>
__global__ void __launch_bounds__(Shape::kWarps * 32, 1)
    persistent_decode_kernel(const __grid_constant__ CUtensorMap w13_map,
                             const __grid_constant__ CUtensorMap w2_map, PersistentParams params) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int kFrags = Shape::kFrags, kRowFrags = Shape::kRowFrags, kDepth = Shape::kDepth;
  constexpr int kBoxRows = Shape::kBoxRows, kBoxBytes = Shape::kBoxBytes;
  extern __shared__ __align__(1024) unsigned char shared_bytes[];
  const unsigned ring_base = aligned_shared_base(shared_bytes);
  auto& control = *reinterpret_cast<typename Shape::Shared*>(
      shared_bytes + (ring_base - shared_address(shared_bytes)) + kPersistentRingBytes);
  PersistentRouting& shared = control.routing;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int g = lane / 4, t4 = lane % 4;
  const unsigned ring = ring_base + warp * kDepth * kBoxBytes;
  const unsigned full0 = shared_address(&control.full[warp][0]);
  if (lane == 0) {
    for (int slot = 0; slot < kDepth; ++slot) mbarrier_init(full0 + 8 * slot, 1);
    mbarrier_init_fence();
    if (warp == 0) {
      tma_prefetch_descriptor(&w13_map);
      tma_prefetch_descriptor(&w2_map);
    }
  }
  cuda::wait_for_prior_grids();  // the ids, weights and hidden rows come from the kernels before
  if (warp == 0) persistent_route(params, shared);
  __syncthreads();

  const int active = shared.num_active;
  if (active == 0) {  // nothing routed here: zeros (no counter is touched)
    const std::int64_t elements = static_cast<std::int64_t>(params.num_tokens) * params.hidden_size;
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < elements;
         i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
      params.out[i] = __float2bfloat16_rn(0.0f);
    }
    return;
  }

  const std::int64_t warps = static_cast<std::int64_t>(gridDim.x) * Shape::kWarps;
  const std::int64_t me = static_cast<std::int64_t>(blockIdx.x) * Shape::kWarps + warp;
  auto make_phase = [&](int groups, int panels, float* partials, unsigned* unit_counters) {
    PersistentPhase phase;
    phase.boxes = static_cast<std::int64_t>(active) * groups * panels;
    phase.panels = panels;
    phase.groups = groups;
    phase.partials = partials;
    phase.unit_counters = unit_counters;
    phase.begin = range_start(me, phase.boxes, warps);
    phase.end = range_start(me + 1, phase.boxes, warps);
    return phase;
  };
  // Two named structs, not an array: a runtime index would put them in local memory.
  const PersistentPhase gemm1 =
      make_phase(params.groups1, params.panels1, params.partials1, params.counters.gemm1_units);
  const PersistentPhase gemm2 =
      make_phase(params.groups2, params.panels2, params.partials2, params.counters.gemm2_units);
  const int count1 = static_cast<int>(gemm1.end - gemm1.begin);
  const int total = count1 + static_cast<int>(gemm2.end - gemm2.begin);

  // A box's place: phase, active expert, group (unit within the expert) and k-panel. Cursors step from box to
  // box without dividing (a warp issues few instructions per box: they are its latency).
  struct Cursor {
    int phase, a, group, panel;
  };
  auto cursor_at = [&](int phase, std::int64_t box) {
    const int panels = phase == 0 ? params.panels1 : params.panels2;
    const int groups = phase == 0 ? params.groups1 : params.groups2;
    const std::int64_t unit = box / panels;
    return Cursor{phase, static_cast<int>(unit / groups), static_cast<int>(unit % groups),
                  static_cast<int>(box % panels)};
  };
  const Cursor start1 = cursor_at(0, gemm1.begin), start2 = cursor_at(1, gemm2.begin);
  // Box j + 1 after box j (at cursor c).
  auto step = [&](Cursor& c, int j) {
    if (j + 1 == count1) {
      c = start2;
      return;
    }
    const int panels = c.phase == 0 ? params.panels1 : params.panels2;
    const int groups = c.phase == 0 ? params.groups1 : params.groups2;
    if (++c.panel == panels) {
      c.panel = 0;
      if (++c.group == groups) {
        c.group = 0;
        ++c.a;
      }
    }
  };
  Cursor issue_cursor = count1 > 0 ? start1 : start2;
  int issued = 0;
  auto issue = [&]() {  // lane 0 only: box `issued` into its slot
    const int slot = issued % kDepth;
    const unsigned barrier = full0 + 8 * slot;
    mbarrier_arrive_expect_bytes(barrier, kBoxBytes);
    tma_load_panel(ring + slot * kBoxBytes, issue_cursor.phase == 0 ? &w13_map : &w2_map,
                   issue_cursor.group * kBoxRows, issue_cursor.panel, shared.active_expert[issue_cursor.a],
                   barrier);
    step(issue_cursor, issued);
    ++issued;
  };
  if (lane == 0) {
    while (issued < total && issued < min(kDepth, params.lookahead)) issue();
  }

  PersistentAccumulators<Shape> acc{};
  int pairs_begin = 0, pairs_count = 0;
  // The B fragments of token fragment f (this lane's token: row g of it) over the 64 columns of k-panel
  // `panel`: [kk][0 / 1] = columns 16 kk + 2 t4 (+ 8). They do not depend on the weights: the next box's
  // first fragment is requested while this box is multiplied.
  auto load_b = [&](int phase, int panel, int f, unsigned(&b)[4][2]) {
    const int n = f * 8 + g;
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) b[kk][0] = b[kk][1] = 0;
    if (n >= pairs_count) return;
    const int pair = shared.sorted_pairs[pairs_begin + n];
    const std::int64_t k0 = static_cast<std::int64_t>(panel) * 64 + 2 * t4;
    if (phase == 0) {
      const bf16* row = params.hidden + static_cast<std::int64_t>(pair / params.top_k) * params.lda;
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        const std::int64_t k = k0 + kk * 16;
        if (k < params.a_columns) b[kk][0] = __ldg(reinterpret_cast<const unsigned*>(row + k));
        if (k + 8 < params.a_columns) b[kk][1] = __ldg(reinterpret_cast<const unsigned*>(row + k + 8));
      }
    } else {
      const bf16* row = params.intermediate + static_cast<std::int64_t>(pair) * params.ldi + k0;
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        b[kk][0] = __ldcg(reinterpret_cast<const unsigned*>(row + kk * 16));
        b[kk][1] = __ldcg(reinterpret_cast<const unsigned*>(row + kk * 16 + 8));
      }
    }
  };
  unsigned b_first[4][2], b_next[4][2];
  Cursor cur = count1 > 0 ? start1 : start2;
  for (int j = 0; j < total; ++j, step(cur, j - 1)) {
    const int phase = cur.phase, a = cur.a, group = cur.group, panel = cur.panel;
    const int panels = phase == 0 ? params.panels1 : params.panels2;
    const std::int64_t unit =
        static_cast<std::int64_t>(a) * (phase == 0 ? params.groups1 : params.groups2) + group;
    const bool unit_starts = j == 0 || j == count1 || panel == 0;
    const bool unit_ends = j + 1 == total || j + 1 == count1 || panel + 1 == panels;
    if (unit_starts) {
      acc.zero();
      pairs_begin = shared.active_begin[a];
      pairs_count = shared.active_begin[a + 1] - pairs_begin;
      // GEMM2 reads the expert's intermediate rows: all of its GEMM1 units must be done.
      if (phase == 1)
        warp_wait_at_least(&params.counters.expert_done[a], static_cast<unsigned>(params.groups1));
      load_b(phase, panel, 0, b_first);
    } else {
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        b_first[kk][0] = b_next[kk][0];
        b_first[kk][1] = b_next[kk][1];
      }
    }
    if (!unit_ends) load_b(phase, panel + 1, 0, b_next);  // the same unit's next box
    unsigned b_other[kFrags > 1 ? kFrags - 1 : 1][4][2];
#pragma unroll
    for (int f = 1; f < kFrags; ++f) {
      if (f * 8 < pairs_count) load_b(phase, panel, f, b_other[f - 1]);
    }
    const int slot = j % kDepth;
    mbarrier_wait(full0 + 8 * slot, static_cast<unsigned>((j / kDepth) & 1));
    const unsigned stage = ring + slot * kBoxBytes;
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
#pragma unroll
      for (int h = 0; h < kRowFrags; ++h) {
        unsigned a_fragment[4];
        const int row = h * 16 + (lane & 15), chunk = kk * 2 + (lane >> 4);
        ldmatrix_x4(a_fragment, stage + row * 128 + ((chunk ^ (row & 7)) << 4));
#pragma unroll
        for (int f = 0; f < kFrags; ++f) {
          if (f * 8 >= pairs_count) break;
          const unsigned b0 = f == 0 ? b_first[kk][0] : b_other[f - 1][kk][0];
          const unsigned b1 = f == 0 ? b_first[kk][1] : b_other[f - 1][kk][1];
          mma_bf16_16816(acc.value[h][f], a_fragment, b0, b1);
        }
      }
    }
    __syncwarp();  // every lane's reads of this slot are done: it may be refilled
    if (lane == 0 && issued < total && issued <= j + params.lookahead) issue();
    if (!unit_ends) continue;
    const PersistentPhase current = phase == 0 ? gemm1 : gemm2;
    if (!persistent_complete_unit(acc, unit, current, me, warps)) continue;

    // Calls write(h, f, r, pair, row) for each of this lane's accumulator values that belongs to one of the
    // expert's pairs: row fragment h (< RowFrags), token fragment f, mma register r, row g + 8 (r / 2) of the
    // fragment.
    auto for_each_pair_value = [&](auto row_frags, auto&& write) {
#pragma unroll
      for (int h = 0; h < decltype(row_frags)::value; ++h) {
#pragma unroll
        for (int f = 0; f < kFrags; ++f) {
#pragma unroll
          for (int r = 0; r < 4; ++r) {
            const int n = f * 8 + 2 * t4 + r % 2;
            if (n < pairs_count) write(h, f, r, shared.sorted_pairs[pairs_begin + n], g + 8 * (r / 2));
          }
        }
      }
    };
    if (phase == 0) {
      // act(gate) * up for the box's intermediate columns (16 per row group q: fragments 2q and 2q + 1).
      for_each_pair_value(
          std::integral_constant<int, kRowFrags / 2>{}, [&](int q, int f, int r, int pair, int row) {
            const std::int64_t column = 16 * (static_cast<std::int64_t>(group) * (kBoxRows / 32) + q) + row;
            params.intermediate[static_cast<std::int64_t>(pair) * params.ldi + column] = __float2bfloat16_rn(
                gated_activation(acc.value[2 * q][f][r], acc.value[2 * q + 1][f][r], params.activation));
          });
      (void)warp_count_in(&params.counters.expert_done[a]);
    } else {
      // Routing weight x sum for the box's output columns of the expert's pairs.
      const std::int64_t pitch = kBoxRows * static_cast<std::int64_t>(params.groups2);
      for_each_pair_value(
          std::integral_constant<int, kRowFrags>{}, [&](int h, int f, int r, int pair, int row) {
            const std::int64_t column = kBoxRows * static_cast<std::int64_t>(group) + 16 * h + row;
            __stcg(params.pair_rows + static_cast<std::int64_t>(pair) * pitch + column,
                   params.topk_weights[pair] * acc.value[h][f][r]);
          });
      if (warp_count_in(&params.counters.columns_done[group]) != static_cast<unsigned>(active) - 1) continue;
      // The last expert of these columns: every token's sum over its slots, in slot order.
      __threadfence();
      for (int offset = lane; offset < kBoxRows; offset += 32) {
        const std::int64_t column = kBoxRows * static_cast<std::int64_t>(group) + offset;
        if (column >= params.hidden_size) break;
        for (int token = 0; token < params.num_tokens; ++token) {
          float sum = 0.0f;
          for (int s = 0; s < params.top_k; ++s) {
            const int pair = token * params.top_k + s;
            if (shared.local_of_pair[pair] >= 0) sum += __ldcg(params.pair_rows + pair * pitch + column);
          }
          params.out[token * params.hidden_size + column] = __float2bfloat16_rn(sum);
        }
      }
      if (lane == 0) params.counters.columns_done[group] = 0;
    }
  }

  // The last block out resets the expert counters (every wait on them is over).
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    if (atomicAdd(params.counters.blocks_exited, 1u) == gridDim.x - 1) {
      for (int a = 0; a < active; ++a) params.counters.expert_done[a] = 0;
      *params.counters.blocks_exited = 0;
    }
  }
#elif defined(__CUDA_ARCH__)
  __trap();  // no TMA in this device code: never write nothing silently (hosts check first)
#endif
}

}  // namespace fusedmoe::cuda_fused
