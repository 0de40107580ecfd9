#include "backends/cpu_onednn_grouped/onednn_matmul.hpp"

#include <omp.h>
#include <oneapi/dnnl/dnnl_debug.h>

#include "core/check.hpp"

namespace fusedmoe {

namespace {

using Tag = dnnl::memory::format_tag;
using DataType = dnnl::memory::data_type;

// Rows of the primitive descriptor that picks the weight layout. brgemm's layout choice for bf16
// weights depends on N and K only once M is past its small-M heuristics.
constexpr std::int64_t kLayoutProbeRows = 32;

dnnl::matmul::primitive_desc make_primitive_desc(std::int64_t m, std::int64_t k, std::int64_t n,
                                                 const dnnl::memory::desc& weights, bool user_scratchpad) {
  dnnl::primitive_attr attr;
  if (user_scratchpad) attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  const dnnl::memory::desc src({m, k}, DataType::bf16, Tag::ab);
  const dnnl::memory::desc dst({m, n}, DataType::f32, Tag::ab);
  return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weights, dst), attr, onednn_cpu_engine());
}

// Owns a dnnl_memory_t over caller memory (the C API: no allocation on our side).
class RawMemory {
 public:
  RawMemory(const dnnl::memory::desc& desc, const void* data) {
    check(dnnl_memory_create(&memory_, &desc.data, onednn_cpu_engine().get(), const_cast<void*>(data)),
          "dnnl_memory_create");
  }
  ~RawMemory() {
    if (memory_ != nullptr) dnnl_memory_destroy(memory_);
  }
  RawMemory(const RawMemory&) = delete;
  RawMemory& operator=(const RawMemory&) = delete;
  dnnl_memory_t get() const { return memory_; }

  static void check(dnnl_status_t status, std::string_view call) {
    if (status != dnnl_success) {
      throw InternalError(str_cat("[", kOneDnnGroupedId, "] ", call, " failed: ", dnnl_status2str(status),
                                  " (", static_cast<int>(status), ")"));
    }
  }

 private:
  dnnl_memory_t memory_ = nullptr;
};

}  // namespace

const dnnl::engine& onednn_cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

ScopedOmpThreads::ScopedOmpThreads(int num_threads) : previous_(omp_get_max_threads()) {
  omp_set_num_threads(num_threads);
}

ScopedOmpThreads::~ScopedOmpThreads() {
  omp_set_num_threads(previous_);
}

dnnl::memory::desc preferred_weights_desc(std::int64_t k, std::int64_t n) {
  const ScopedOmpThreads single(1);
  const dnnl::memory::desc any({k, n}, DataType::bf16, Tag::any);
  return make_primitive_desc(kLayoutProbeRows, k, n, any, true).weights_desc();
}

std::size_t matmul_scratchpad_bytes(std::int64_t m, std::int64_t k, std::int64_t n, int num_threads) {
  const ScopedOmpThreads threads(num_threads);
  const dnnl::memory::desc any({k, n}, DataType::bf16, Tag::any);
  return make_primitive_desc(m, k, n, any, true).scratchpad_desc().get_size();
}

const CachedMatmul& MatmulCache::get(std::int64_t m, int num_threads, std::size_t scratchpad_capacity) {
  std::lock_guard lock(mutex_);
  const CachedMatmul* chosen = &create(m, 1, true);
  if (num_threads > 1) {
    // NOTE: brgemm's arithmetic per output element does not depend on the thread count or on m
    // (checked bit for bit), which keeps results identical for any thread count. Another
    // implementation could round differently, so a mismatch keeps the single-threaded primitive.
    const CachedMatmul& threaded = create(m, num_threads, true);
    if (threaded.impl == chosen->impl) chosen = &threaded;
  }
  if (chosen->scratchpad_bytes > scratchpad_capacity) chosen = &create(m, chosen->num_threads, false);
  return *chosen;
}

const CachedMatmul& MatmulCache::create(std::int64_t m, int num_threads, bool user_scratchpad) {
  auto& slot = entries_[{m, num_threads, user_scratchpad}];
  if (slot) return *slot;
  const ScopedOmpThreads threads(num_threads);
  const dnnl::matmul::primitive_desc pd = make_primitive_desc(m, k_, n_, weights_, user_scratchpad);
  FUSEDMOE_ASSERT(pd.weights_desc() == weights_, "[", kOneDnnGroupedId,
                  "] oneDNN changed the weight layout for m=", m);
  auto entry = std::make_unique<CachedMatmul>();
  entry->primitive = dnnl::matmul(pd);
  entry->src = pd.src_desc();
  entry->dst = pd.dst_desc();
  entry->scratchpad = pd.scratchpad_desc();
  entry->scratchpad_bytes = user_scratchpad ? pd.scratchpad_desc().get_size() : 0;
  entry->user_scratchpad = user_scratchpad;
  entry->num_threads = num_threads;
  entry->impl = pd.impl_info_str();
  slot = std::move(entry);
  return *slot;
}

void execute_matmul(const CachedMatmul& matmul, const dnnl::memory::desc& weights_desc,
                    const dnnl::stream& stream, const void* src, const void* weights, void* dst,
                    void* scratchpad) {
  const RawMemory src_memory(matmul.src, src), weights_memory(weights_desc, weights),
      dst_memory(matmul.dst, dst);
  if (matmul.user_scratchpad && matmul.scratchpad_bytes > 0) {
    const RawMemory scratchpad_memory(matmul.scratchpad, scratchpad);
    const dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, src_memory.get()},
                                    {DNNL_ARG_WEIGHTS, weights_memory.get()},
                                    {DNNL_ARG_DST, dst_memory.get()},
                                    {DNNL_ARG_SCRATCHPAD, scratchpad_memory.get()}};
    RawMemory::check(dnnl_primitive_execute(matmul.primitive.get(), stream.get(), 4, args),
                     "dnnl_primitive_execute");
  } else {
    const dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, src_memory.get()},
                                    {DNNL_ARG_WEIGHTS, weights_memory.get()},
                                    {DNNL_ARG_DST, dst_memory.get()}};
    RawMemory::check(dnnl_primitive_execute(matmul.primitive.get(), stream.get(), 3, args),
                     "dnnl_primitive_execute");
  }
}

void rethrow_onednn_error(const dnnl::error& error, std::string_view what) {
  throw InternalError(str_cat("[", kOneDnnGroupedId, "] oneDNN failed while ", what, ": ", error.what(), " (",
                              dnnl_status2str(error.status), ")"));
}

}  // namespace fusedmoe
