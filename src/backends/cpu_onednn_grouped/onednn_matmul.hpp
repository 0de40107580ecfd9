// oneDNN plumbing for cpu_onednn_grouped: the CPU engine, the prepacked weight layout, and a cache
// of matmul primitives [m, K] bf16 x [K, N] bf16 (prepacked) -> [m, N] fp32, one per (m, threads).
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace fusedmoe {

inline constexpr std::string_view kOneDnnGroupedId = "cpu_onednn_grouped";

// The process-wide oneDNN CPU engine.
const dnnl::engine& onednn_cpu_engine();

// Sets the OpenMP thread count of the calling thread for its lifetime. oneDNN (OpenMP runtime)
// sizes a primitive's parallel work from omp_get_max_threads() when the primitive is created.
class ScopedOmpThreads {
 public:
  explicit ScopedOmpThreads(int num_threads);
  ~ScopedOmpThreads();
  ScopedOmpThreads(const ScopedOmpThreads&) = delete;
  ScopedOmpThreads& operator=(const ScopedOmpThreads&) = delete;

 private:
  int previous_;
};

// The weight layout oneDNN prefers for a [K, N] bf16 weight matrix (format_tag::any resolved by a
// primitive descriptor created single-threaded, so that the choice does not depend on the caller's threads).
dnnl::memory::desc preferred_weights_desc(std::int64_t k, std::int64_t n);

// One matmul primitive of a fixed shape.
struct CachedMatmul {
  dnnl::matmul primitive;
  std::int64_t rows = 0;  // rows it computes (>= the task's: MatmulCache::rows_for)
  dnnl::memory::desc src, dst, scratchpad;
  std::size_t scratchpad_bytes = 0;  // user-managed scratchpad
  int num_threads = 1;               // threads the primitive runs with
  std::string impl;                  // oneDNN's implementation name, e.g. "brg:avx512_core_bf16"
  bool usable = true;                // false: a threaded variant get() never returns (no primitive)
};

// Matmul primitives for one weight matrix [K, N] in a given layout, created on first use per
// (m, threads) and kept; every one takes a user-managed scratchpad. Thread-safe; create entries
// outside parallel regions (creation JIT-compiles).
class MatmulCache {
 public:
  MatmulCache(std::int64_t k, std::int64_t n, dnnl::memory::desc weights)
      : k_(k), n_(n), weights_(std::move(weights)) {}
  // Plans the row counts 1 .. max_rows: which row count each runs with (rows_for) and the most
  // scratchpad bytes a single-threaded primitive of any of them needs (returned). Call once, first.
  std::size_t plan(std::int64_t max_rows);
  // The rows a task of m rows (1 .. the planned max_rows) runs with: m, or the fewest rows above it for
  // which oneDNN picks the same implementation as for the 32 rows that chose the weight layout. On AMX CPUs
  // oneDNN 2.6 takes an AVX512 brgemm for 1 or 2 rows and AMX from 3 on: the two round differently, so a
  // token's result would depend on how many rows its expert had in the batch. The caller pads the extra rows.
  std::int64_t rows_for(std::int64_t m) const;
  // The primitive for `m` rows (it computes rows_for(m) rows) on `num_threads` threads, or the
  // single-threaded one when the threaded one could round differently (see get's definition) or needs
  // more than `scratchpad_capacity` bytes of scratchpad. The single-threaded one must fit.
  const CachedMatmul& get(std::int64_t m, int num_threads, std::size_t scratchpad_capacity);
  const dnnl::memory::desc& weights_desc() const { return weights_; }

 private:
  dnnl::matmul::primitive_desc primitive_desc(std::int64_t m, int num_threads) const;
  const CachedMatmul& entry(std::int64_t m, int num_threads);

  std::int64_t k_, n_;
  dnnl::memory::desc weights_;
  std::vector<std::int64_t> padded_rows_;  // [m] for m = 0 .. planned max_rows
  std::mutex mutex_;
  std::map<std::pair<std::int64_t, int>, std::unique_ptr<CachedMatmul>> entries_;
};

// Runs `matmul` on raw pointers: src [m, K] bf16, weights (prepacked) and dst [m, N] fp32.
void execute_matmul(const CachedMatmul& matmul, const dnnl::memory::desc& weights_desc,
                    const dnnl::stream& stream, const void* src, const void* weights, void* dst,
                    void* scratchpad);

// Rethrows a dnnl::error as a fusedmoe error naming what was being done.
[[noreturn]] void rethrow_onednn_error(const dnnl::error& error, std::string_view what);

}  // namespace fusedmoe
