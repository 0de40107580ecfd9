#include "backends/cpu_onednn_grouped/onednn_matmul.hpp"

#include <omp.h>
#include <oneapi/dnnl/dnnl_debug.h>

#include "core/check.hpp"

namespace fusedmoe {

namespace {

using Tag = dnnl::memory::format_tag;
using DataType = dnnl::memory::data_type;

// Rows of the primitive descriptor that picks the weight layout. The layout it picks then serves every
// m from 1 to 64 without falling off brgemm (checked on AVX512_BF16 and AMX CPUs).
constexpr std::int64_t kLayoutProbeRows = 32;

dnnl::matmul::primitive_desc make_primitive_desc(std::int64_t m, std::int64_t k, std::int64_t n,
                                                 const dnnl::memory::desc& weights) {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
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
  return make_primitive_desc(kLayoutProbeRows, k, n, any).weights_desc();
}

dnnl::matmul::primitive_desc MatmulCache::primitive_desc(std::int64_t m, int num_threads) const {
  const ScopedOmpThreads threads(num_threads);
  dnnl::matmul::primitive_desc pd = make_primitive_desc(m, k_, n_, weights_);
  FUSEDMOE_ASSERT(pd.weights_desc() == weights_, "[", kOneDnnGroupedId,
                  "] oneDNN changed the weight layout for m=", m);
  return pd;
}

std::size_t MatmulCache::plan(std::int64_t max_rows) {
  // Creating a descriptor is cheap (no JIT), so ask for every m: the implementation and the scratchpad
  // size (not monotonic in m: AMX kernels pick their blocking per m).
  const std::string reference = primitive_desc(kLayoutProbeRows, 1).impl_info_str();
  std::vector<std::string> impl(static_cast<std::size_t>(max_rows) + 1);
  std::size_t bytes = 0;
  for (std::int64_t m = 1; m <= max_rows; ++m) {
    const dnnl::matmul::primitive_desc pd = primitive_desc(m, 1);
    impl[m] = pd.impl_info_str();
    bytes = std::max(bytes, pd.scratchpad_desc().get_size());
  }
  padded_rows_.assign(static_cast<std::size_t>(max_rows) + 1, 0);
  for (std::int64_t m = 1; m <= max_rows; ++m) {
    std::int64_t rows = m;
    while (rows < max_rows && impl[rows] != reference) ++rows;
    padded_rows_[m] = impl[rows] == reference ? rows : m;  // none above agrees: as it is
  }
  return bytes;
}

std::int64_t MatmulCache::rows_for(std::int64_t m) const {
  FUSEDMOE_ASSERT(m >= 1 && m < static_cast<std::int64_t>(padded_rows_.size()), "[", kOneDnnGroupedId,
                  "] matmul of ", m, " rows: planned for 1 .. ", padded_rows_.size() - 1);
  return padded_rows_[m];
}

const CachedMatmul& MatmulCache::entry(std::int64_t m, int num_threads) {
  auto& slot = entries_[{m, num_threads}];
  if (slot) return *slot;
  const dnnl::matmul::primitive_desc pd = primitive_desc(m, num_threads);
  auto created = std::make_unique<CachedMatmul>();
  created->src = pd.src_desc();
  created->dst = pd.dst_desc();
  created->scratchpad = pd.scratchpad_desc();
  created->scratchpad_bytes = pd.scratchpad_desc().get_size();
  created->rows = m;
  created->num_threads = num_threads;
  created->impl = pd.impl_info_str();
  if (num_threads > 1) {
    // NOTE: brgemm's arithmetic per output element depends neither on the thread count nor on m
    // (checked bit for bit), which keeps results identical for any thread count. Another
    // implementation could round differently, so the threaded variant is used only when oneDNN
    // picks the same implementation as single-threaded.
    // WORKAROUND(onednn-amx-k-split): oneDNN's AMX brgemm splits K over threads (nthr_k) once it
    // has 16 or more, which changes the summation order; AMX primitives stay single-threaded.
    const CachedMatmul& single = entry(m, 1);
    created->usable = created->impl == single.impl && created->impl.find("amx") == std::string::npos;
  }
  if (created->usable) {
    const ScopedOmpThreads threads(num_threads);  // oneDNN sizes its parallel work at creation
    created->primitive = dnnl::matmul(pd);
  }
  slot = std::move(created);
  return *slot;
}

const CachedMatmul& MatmulCache::get(std::int64_t task_rows, int num_threads,
                                     std::size_t scratchpad_capacity) {
  const std::int64_t m = rows_for(task_rows);
  std::lock_guard lock(mutex_);
  const CachedMatmul& single = entry(m, 1);
  FUSEDMOE_ASSERT(single.scratchpad_bytes <= scratchpad_capacity, "[", kOneDnnGroupedId, "] matmul m=", m,
                  " needs ", single.scratchpad_bytes, " scratchpad bytes, the workspace holds ",
                  scratchpad_capacity);
  if (num_threads <= 1) return single;
  const CachedMatmul& threaded = entry(m, num_threads);
  return threaded.usable && threaded.scratchpad_bytes <= scratchpad_capacity ? threaded : single;
}

void execute_matmul(const CachedMatmul& matmul, const dnnl::memory::desc& weights_desc,
                    const dnnl::stream& stream, const void* src, const void* weights, void* dst,
                    void* scratchpad) {
  const RawMemory src_memory(matmul.src, src), weights_memory(weights_desc, weights),
      dst_memory(matmul.dst, dst);
  if (matmul.scratchpad_bytes > 0) {
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
