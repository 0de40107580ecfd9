#include "backends/cpu_onednn_grouped/experts.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <exception>
#include <mutex>

#include "core/check.hpp"
#include "core/tensor_checks.hpp"
#include "core/threading.hpp"

namespace fusedmoe {

namespace {

// Most threads one call uses (workspace slots are sized for the default thread count up to this).
constexpr int kMaxThreads = 64;
// Rows of one task: an expert with more routed rows is split into near-equal tasks of at most this
// many, so that one hot expert still spreads over the threads. 64 rows already make the GEMMs
// compute-bound; more would only grow the per-thread buffers.
constexpr std::int64_t kMaxRowsPerTask = 64;
// Bound on the fp32 per-(token, slot) expert outputs; larger batches are processed in token blocks.
constexpr std::int64_t kExpertRowsBytes = std::int64_t{256} << 20;
// Columns reduced at a time (a stack buffer).
constexpr std::int64_t kReduceColumns = 512;

// float -> bf16 bits, round to nearest even, NaN stays a quiet NaN (as float_to_bf16, inlined).
inline std::uint16_t to_bf16_bits(float value) {
  const std::uint32_t bits = std::bit_cast<std::uint32_t>(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((bits >> 16) | 0x40u);
  return static_cast<std::uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

// intermediate[r, j] = act(gate[r, j]) * up[r, j], rounded to bf16; gate_up rows are [gate | up].
void gated_activation(Activation activation, const float* gate_up, std::uint16_t* intermediate,
                      std::int64_t rows, std::int64_t width) {
  for (std::int64_t row = 0; row < rows; ++row) {
    const float* gate = gate_up + row * 2 * width;
    const float* up = gate + width;
    std::uint16_t* out = intermediate + row * width;
    if (activation == Activation::silu) {
      for (std::int64_t column = 0; column < width; ++column) {
        const float value = gate[column];
        out[column] = to_bf16_bits(value / (1.0f + std::exp(-value)) * up[column]);
      }
    } else {
      for (std::int64_t column = 0; column < width; ++column) {
        const float value = gate[column];
        out[column] =
            to_bf16_bits(0.5f * value * (1.0f + std::erf(value * 0.70710678118654752f)) * up[column]);
      }
    }
  }
}

// Threads the workspace is sized for: the default thread count (FUSEDMOE_NUM_THREADS, else the cores
// available), at most kMaxThreads.
int default_slots() {
  return std::min(resolve_num_threads(ExecContext{}), kMaxThreads);
}

// NOTE: measured on a 2-core AVX512_BF16 CPU (qwen3-30b-a3b shapes): with as many tasks as threads,
// task-parallel runs about 25% faster than GEMM-parallel (no fork/join per GEMM, each thread streams
// its own expert). So task-parallel wins unless its last round leaves threads idle for longer than
// that: its rounds ceil(tasks / threads) must stay within 1.25x of the even share tasks / threads.
bool prefer_task_parallel(std::int64_t num_tasks, int num_threads) {
  if (num_threads <= 1) return true;
  const std::int64_t rounds = (num_tasks + num_threads - 1) / num_threads;
  return 4 * rounds * num_threads <= 5 * num_tasks;
}

// Captures the first exception thrown inside a parallel region, to rethrow after it.
class FirstError {
 public:
  template <class Body>
  void run(Body&& body) {
    try {
      body();
    } catch (...) {
      std::lock_guard lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }
  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::mutex mutex_;
  std::exception_ptr error_;
};

}  // namespace

struct OneDnnGroupedExperts::Task {
  std::int64_t expert;  // local expert
  std::int64_t first;   // first row in the expert-sorted order of the block
  std::int64_t rows;
};

// One slot's buffers (one slot per thread that runs tasks).
struct OneDnnGroupedExperts::SlotBuffers {
  std::uint16_t* gathered = nullptr;      // bf16 [rows, H]: the task's token rows
  float* gate_up = nullptr;               // fp32 [rows, 2I]: GEMM1 output
  std::uint16_t* intermediate = nullptr;  // bf16 [rows, I]: activation output, GEMM2 input
  float* down = nullptr;                  // fp32 [rows, H]: GEMM2 output of a task run with extra rows
  char* scratchpad = nullptr;             // oneDNN's user-managed scratchpad
};

struct OneDnnGroupedExperts::Buffers {
  std::int64_t* offsets = nullptr;       // [E_local + 1] first sorted row of each expert
  std::int64_t* cursors = nullptr;       // [E_local]
  std::int32_t* sorted_pairs = nullptr;  // [pairs] (token, slot) pair of each sorted row
  std::int32_t* positions = nullptr;     // [pairs] sorted row of each pair, -1 when not local
  Task* tasks = nullptr;                 // [max_tasks]
  float* expert_rows = nullptr;          // fp32 [pairs, H] expert output of each sorted row
  std::array<SlotBuffers, kMaxThreads> slots{};
};

struct OneDnnGroupedExperts::Layout {
  std::int64_t block_tokens = 0;  // tokens per block
  std::int64_t pairs = 0;         // (token, slot) pairs per block
  std::int64_t max_rows = 0;      // rows per task
  std::int64_t slot_rows = 0;     // rows a task's GEMMs run with at most (MatmulCache::rows_for)
  bool padded_down = false;       // some task's GEMM2 runs with extra rows (into SlotBuffers::down)
  std::int64_t max_tasks = 0;
  int num_slots = 1;
  std::size_t slot_scratchpad = 0;  // user scratchpad bytes per slot
  std::size_t total = 0;
};

OneDnnGroupedExperts::OneDnnGroupedExperts(const MoeConfig& config)
    : config_(config),
      gemm1_(config.hidden_size, 2 * config.intermediate_size,
             preferred_weights_desc(config.hidden_size, 2 * config.intermediate_size)),
      gemm2_(config.intermediate_size, config.hidden_size,
             preferred_weights_desc(config.intermediate_size, config.hidden_size)) {
  try {
    slot_scratchpad_ = std::max(gemm1_.plan(kMaxRowsPerTask), gemm2_.plan(kMaxRowsPerTask));
  } catch (const dnnl::error& error) {
    rethrow_onednn_error(error, "planning the expert GEMMs");
  }
}

OneDnnGroupedExperts::Layout OneDnnGroupedExperts::layout_for(std::int64_t num_tokens, int num_slots) const {
  const std::int64_t top_k = config_.routing.top_k;
  const std::int64_t hidden = config_.hidden_size;
  const std::int64_t intermediate = config_.intermediate_size;
  const std::int64_t experts = config_.num_local_experts();
  Layout layout;
  layout.block_tokens = std::clamp<std::int64_t>(kExpertRowsBytes / (top_k * hidden * 4), 1,
                                                 std::max<std::int64_t>(num_tokens, 1));
  layout.pairs = layout.block_tokens * top_k;
  layout.max_rows = std::min(kMaxRowsPerTask, layout.pairs);
  for (std::int64_t rows = 1; rows <= layout.max_rows; ++rows) {
    layout.slot_rows = std::max({layout.slot_rows, gemm1_.rows_for(rows), gemm2_.rows_for(rows)});
    layout.padded_down = layout.padded_down || gemm2_.rows_for(rows) > rows;
  }
  // Each expert with rows gives ceil(rows / max_rows) tasks: at most one partial task per expert.
  layout.max_tasks = std::min(experts, layout.pairs) + layout.pairs / layout.max_rows;
  layout.num_slots = num_slots;
  layout.slot_scratchpad = slot_scratchpad_;
  const auto bytes = WorkspaceArena::bytes_for;
  std::size_t total = bytes(DType::int64, experts + 1) + bytes(DType::int64, experts);  // offsets, cursors
  total += 2 * bytes(DType::int32, layout.pairs);  // sorted pairs, positions
  total += bytes(DType::int64, 3 * layout.max_tasks);
  total += bytes(DType::fp32, layout.pairs * hidden);  // per-(token, slot) expert outputs
  const std::size_t per_slot = bytes(DType::bf16, layout.slot_rows * hidden) +
                               bytes(DType::fp32, layout.slot_rows * 2 * intermediate) +
                               bytes(DType::bf16, layout.slot_rows * intermediate) +
                               (layout.padded_down ? bytes(DType::fp32, layout.slot_rows * hidden) : 0);
  total += static_cast<std::size_t>(num_slots) * per_slot;
  total += bytes(DType::uint8, static_cast<std::int64_t>(num_slots * layout.slot_scratchpad));
  layout.total = total;
  return layout;
}

std::size_t OneDnnGroupedExperts::workspace_bytes(const ExpertsProblem& problem) const {
  return layout_for(problem.num_tokens, default_slots()).total;
}

void OneDnnGroupedExperts::apply(const DispatchedTokens& dispatched, const ExpertWeights& weights,
                                 const TensorView& expert_out, WorkspaceArena& workspace,
                                 const ExecContext& context) {
  const auto* packed = dynamic_cast<const OneDnnGroupedWeights*>(&weights);
  FUSEDMOE_ASSERT(packed != nullptr, "backend ", name(), " was given weights converted by another backend");
  FUSEDMOE_CHECK(packed->num_local_experts == config_.num_local_experts() &&
                     packed->w13_desc == gemm1_.weights_desc() && packed->w2_desc == gemm2_.weights_desc(),
                 "[", name(), "] weights were converted for another shape: expected E_local = ",
                 config_.num_local_experts(), ", H = ", config_.hidden_size,
                 ", I = ", config_.intermediate_size, ", got E_local = ", packed->num_local_experts,
                 ", H = ", packed->hidden_size, ", I = ", packed->intermediate_size);
  check_dtype(name(), "hidden", dispatched.hidden, {DType::bf16});
  check_dtype(name(), "expert_out", expert_out, {DType::bf16});
  const std::int64_t num_tokens = dispatched.hidden.size(0);
  if (num_tokens == 0) return;

  // As many threads as asked for, within the slots workspace_bytes() sized the workspace for (the
  // last check only matters when that query ran inside a parallel region and saw one thread).
  const std::size_t available = workspace.capacity() - workspace.used();
  int slots = std::min(resolve_num_threads(context), default_slots());
  while (slots > 1 && layout_for(num_tokens, slots).total > available) --slots;
  const Layout layout = layout_for(num_tokens, slots);

  try {
    while (static_cast<int>(streams_.size()) < slots) streams_.emplace_back(onednn_cpu_engine());
    const std::int64_t experts = config_.num_local_experts();
    Buffers buffers;
    buffers.offsets = workspace.take(DType::int64, {experts + 1}).data_as<std::int64_t>();
    buffers.cursors = workspace.take(DType::int64, {experts}).data_as<std::int64_t>();
    buffers.sorted_pairs = workspace.take(DType::int32, {layout.pairs}).data_as<std::int32_t>();
    buffers.positions = workspace.take(DType::int32, {layout.pairs}).data_as<std::int32_t>();
    buffers.tasks = reinterpret_cast<Task*>(workspace.take(DType::int64, {3 * layout.max_tasks}).data());
    buffers.expert_rows = workspace.take(DType::fp32, {layout.pairs * config_.hidden_size}).data_as<float>();
    for (int slot = 0; slot < slots; ++slot) {
      buffers.slots[slot].gathered =
          workspace.take(DType::bf16, {layout.slot_rows * config_.hidden_size}).data_as<std::uint16_t>();
      buffers.slots[slot].gate_up =
          workspace.take(DType::fp32, {layout.slot_rows * 2 * config_.intermediate_size}).data_as<float>();
      buffers.slots[slot].intermediate =
          workspace.take(DType::bf16, {layout.slot_rows * config_.intermediate_size})
              .data_as<std::uint16_t>();
      if (layout.padded_down) {
        buffers.slots[slot].down =
            workspace.take(DType::fp32, {layout.slot_rows * config_.hidden_size}).data_as<float>();
      }
    }
    char* scratchpad =
        workspace.take(DType::uint8, {static_cast<std::int64_t>(slots * layout.slot_scratchpad)})
            .data_as<char>();
    for (int slot = 0; slot < slots; ++slot) {
      buffers.slots[slot].scratchpad = scratchpad + slot * layout.slot_scratchpad;
    }
    for (std::int64_t begin = 0; begin < num_tokens; begin += layout.block_tokens) {
      const std::int64_t end = std::min(num_tokens, begin + layout.block_tokens);
      run_block(dispatched, *packed, begin, end, expert_out, layout, buffers, slots);
    }
  } catch (const dnnl::error& error) {
    rethrow_onednn_error(error, "running the expert GEMMs");
  }
}

void OneDnnGroupedExperts::run_block(const DispatchedTokens& dispatched, const OneDnnGroupedWeights& weights,
                                     std::int64_t begin, std::int64_t end, const TensorView& expert_out,
                                     const Layout& layout, const Buffers& buffers, int num_threads) {
  const std::int64_t top_k = config_.routing.top_k;
  const std::int64_t hidden = config_.hidden_size;
  const std::int64_t experts = config_.num_local_experts();
  const std::int64_t pairs = (end - begin) * top_k;
  const auto* ids = dispatched.topk_ids.data_as<const std::int32_t>() + begin * top_k;
  const auto* map =
      dispatched.expert_map.defined() ? dispatched.expert_map.data_as<const std::int32_t>() : nullptr;
  std::int64_t* offsets = buffers.offsets;
  std::int32_t* positions = buffers.positions;

  // Counting sort of the (token, slot) pairs by local expert; positions[pair] is the pair's row in
  // the sorted order, -1 for experts that are not on this rank.
  std::fill(offsets, offsets + experts + 1, 0);
  for (std::int64_t pair = 0; pair < pairs; ++pair) {
    const std::int32_t local = map != nullptr ? map[ids[pair]] : ids[pair];
    positions[pair] = local;
    if (local >= 0) ++offsets[local + 1];
  }
  for (std::int64_t expert = 0; expert < experts; ++expert) offsets[expert + 1] += offsets[expert];
  std::copy(offsets, offsets + experts, buffers.cursors);
  for (std::int64_t pair = 0; pair < pairs; ++pair) {
    const std::int32_t local = positions[pair];
    if (local < 0) continue;
    const std::int64_t row = buffers.cursors[local]++;
    buffers.sorted_pairs[row] = static_cast<std::int32_t>(pair);
    positions[pair] = static_cast<std::int32_t>(row);
  }

  // Tasks: each expert's rows in near-equal pieces of at most max_rows, largest first.
  std::int64_t num_tasks = 0;
  for (std::int64_t expert = 0; expert < experts; ++expert) {
    const std::int64_t rows = offsets[expert + 1] - offsets[expert];
    if (rows == 0) continue;
    const std::int64_t pieces = (rows + layout.max_rows - 1) / layout.max_rows;
    for (std::int64_t piece = 0; piece < pieces; ++piece) {
      const std::int64_t first = rows * piece / pieces, last = rows * (piece + 1) / pieces;
      buffers.tasks[num_tasks++] = Task{expert, offsets[expert] + first, last - first};
    }
  }
  FUSEDMOE_ASSERT(num_tasks <= layout.max_tasks);
  std::sort(buffers.tasks, buffers.tasks + num_tasks, [](const Task& a, const Task& b) {
    return a.rows != b.rows ? a.rows > b.rows : a.first < b.first;
  });

  // Task-parallel (one task per thread at a time, each primitive single-threaded) or GEMM-parallel
  // (one task at a time, each primitive on every thread). Either way each output element is computed
  // the same way, so the choice never changes a bit.
  bool task_parallel = prefer_task_parallel(num_tasks, num_threads);
  const std::size_t shared_capacity = num_threads * layout.slot_scratchpad;
  for (std::int64_t index = 0; index < num_tasks && !task_parallel; ++index) {
    // GEMM-parallel only when every GEMM really runs on all threads (see MatmulCache::get).
    const std::int64_t rows = buffers.tasks[index].rows;
    task_parallel = gemm1_.get(rows, num_threads, shared_capacity).num_threads == 1 ||
                    gemm2_.get(rows, num_threads, shared_capacity).num_threads == 1;
  }
  const int gemm_threads = task_parallel ? 1 : num_threads;
  const std::size_t scratchpad_capacity = task_parallel ? layout.slot_scratchpad : shared_capacity;
  for (std::int64_t index = 0; index < num_tasks;
       ++index) {  // creation JIT-compiles: not in parallel regions
    gemm1_.get(buffers.tasks[index].rows, gemm_threads, scratchpad_capacity);
    gemm2_.get(buffers.tasks[index].rows, gemm_threads, scratchpad_capacity);
  }
  const TensorView& tokens = dispatched.hidden;
  if (task_parallel) {
    FirstError first_error;
    parallel_for_dynamic(num_tasks, num_threads, [&](std::int64_t index) {
      first_error.run([&] {
        const int slot = num_threads > 1 ? omp_thread_index() : 0;
        run_task(buffers.tasks[index], weights, tokens, begin, buffers, buffers.slots[slot], 1,
                 scratchpad_capacity, streams_[slot]);
      });
    });
    first_error.rethrow();
  } else {
    const ScopedOmpThreads threads(num_threads);
    for (std::int64_t index = 0; index < num_tasks; ++index) {
      run_task(buffers.tasks[index], weights, tokens, begin, buffers, buffers.slots[0], num_threads,
               scratchpad_capacity, streams_[0]);
    }
  }

  // out[token] = sum over slots, in slot order, of weight * expert row; rounded once at the end.
  const auto* routing_weights = dispatched.topk_weights.data_as<const float>() + begin * top_k;
  auto* out = expert_out.data_as<std::uint16_t>() + begin * hidden;
  const float* expert_rows = buffers.expert_rows;
  parallel_for(end - begin, num_threads, [&](std::int64_t first_token, std::int64_t last_token) {
    float sum[kReduceColumns];
    for (std::int64_t token = first_token; token < last_token; ++token) {
      for (std::int64_t column0 = 0; column0 < hidden; column0 += kReduceColumns) {
        const std::int64_t width = std::min(kReduceColumns, hidden - column0);
        std::fill(sum, sum + width, 0.0f);
        for (std::int64_t slot = 0; slot < top_k; ++slot) {
          const std::int32_t row = positions[token * top_k + slot];
          if (row < 0) continue;  // not on this rank: contributes nothing here
          const float weight = routing_weights[token * top_k + slot];
          const float* values = expert_rows + row * hidden + column0;
          for (std::int64_t column = 0; column < width; ++column) sum[column] += weight * values[column];
        }
        std::uint16_t* destination = out + token * hidden + column0;
        for (std::int64_t column = 0; column < width; ++column)
          destination[column] = to_bf16_bits(sum[column]);
      }
    }
  });
}

void OneDnnGroupedExperts::run_task(const Task& task, const OneDnnGroupedWeights& weights,
                                    const TensorView& tokens, std::int64_t begin, const Buffers& buffers,
                                    const SlotBuffers& slot, int gemm_threads,
                                    std::size_t scratchpad_capacity, const dnnl::stream& stream) {
  const std::int64_t top_k = config_.routing.top_k;
  const std::int64_t hidden = config_.hidden_size;
  const std::int64_t intermediate = config_.intermediate_size;
  const auto* source = tokens.data_as<const std::uint16_t>();
  for (std::int64_t row = 0; row < task.rows; ++row) {
    const std::int64_t token = begin + buffers.sorted_pairs[task.first + row] / top_k;
    std::memcpy(slot.gathered + row * hidden, source + token * hidden, hidden * sizeof(std::uint16_t));
  }
  // A GEMM may run with more rows than the task has (MatmulCache::rows_for): zeros, results dropped.
  const CachedMatmul& gemm1 = gemm1_.get(task.rows, gemm_threads, scratchpad_capacity);
  std::fill(slot.gathered + task.rows * hidden, slot.gathered + gemm1.rows * hidden, std::uint16_t{0});
  execute_matmul(gemm1, gemm1_.weights_desc(), stream, slot.gathered, weights.w13_of(task.expert),
                 slot.gate_up, slot.scratchpad);
  gated_activation(config_.activation, slot.gate_up, slot.intermediate, task.rows, intermediate);
  const CachedMatmul& gemm2 = gemm2_.get(task.rows, gemm_threads, scratchpad_capacity);
  std::fill(slot.intermediate + task.rows * intermediate, slot.intermediate + gemm2.rows * intermediate,
            std::uint16_t{0});
  float* const expert_rows = buffers.expert_rows + task.first * hidden;
  const bool padded = gemm2.rows > task.rows;  // then its extra rows must not land in the next task's
  FUSEDMOE_ASSERT(!padded || slot.down != nullptr);
  execute_matmul(gemm2, gemm2_.weights_desc(), stream, slot.intermediate, weights.w2_of(task.expert),
                 padded ? slot.down : expert_rows, slot.scratchpad);
  if (padded) std::copy(slot.down, slot.down + task.rows * hidden, expert_rows);
}

}  // namespace fusedmoe
