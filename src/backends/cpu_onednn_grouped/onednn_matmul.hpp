// oneDNN plumbing for cpu_onednn_grouped: the CPU engine, the prepacked weight layout, and a cache
// of matmul primitives [m, K] bf16 x [K, N] bf16 (prepacked) -> [m, N] fp32, one per (m, threads).
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

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

// User-managed scratchpad bytes a matmul of `m` rows needs with `num_threads` threads (weights in
// the preferred layout); used to size the workspace.
std::size_t matmul_scratchpad_bytes(std::int64_t m, std::int64_t k, std::int64_t n, int num_threads);

// One matmul primitive of a fixed shape.
struct CachedMatmul {
  dnnl::matmul primitive;
  dnnl::memory::desc src, dst, scratchpad;
  std::size_t scratchpad_bytes = 0;
  bool user_scratchpad = true;  // false: oneDNN allocates its own (only when the workspace slot is too small)
  int num_threads = 1;          // threads the primitive runs with
  std::string impl;             // oneDNN's implementation name, e.g. "brg:avx512_core_bf16"
};

// Matmul primitives for one weight matrix [K, N] in a given layout, created on first use per
// (m, threads) and kept. Thread-safe; call get() outside parallel regions (creation JIT-compiles).
class MatmulCache {
 public:
  MatmulCache(std::int64_t k, std::int64_t n, dnnl::memory::desc weights)
      : k_(k), n_(n), weights_(std::move(weights)) {}
  // The primitive for `m` rows with `num_threads` threads whose scratchpad fits in
  // `scratchpad_capacity` bytes. When the multi-threaded primitive would use another implementation
  // than the single-threaded one (which could change the rounding), the single-threaded one is returned.
  const CachedMatmul& get(std::int64_t m, int num_threads, std::size_t scratchpad_capacity);
  const dnnl::memory::desc& weights_desc() const { return weights_; }

 private:
  const CachedMatmul& create(std::int64_t m, int num_threads, bool user_scratchpad);

  std::int64_t k_, n_;
  dnnl::memory::desc weights_;
  std::mutex mutex_;
  std::map<std::tuple<std::int64_t, int, bool>, std::unique_ptr<CachedMatmul>> entries_;
};

// Runs `matmul` on raw pointers: src [m, K] bf16, weights (prepacked) and dst [m, N] fp32.
void execute_matmul(const CachedMatmul& matmul, const dnnl::memory::desc& weights_desc,
                    const dnnl::stream& stream, const void* src, const void* weights, void* dst,
                    void* scratchpad);

// Rethrows a dnnl::error as a fusedmoe error naming what was being done.
[[noreturn]] void rethrow_onednn_error(const dnnl::error& error, std::string_view what);

}  // namespace fusedmoe
