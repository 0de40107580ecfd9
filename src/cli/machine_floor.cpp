#include "cli/machine_floor.hpp"

#include <omp.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include "core/cpu_features.hpp"
#include "core/threading.hpp"
#include "fusedmoe/tensor.hpp"

namespace fusedmoe::cli {

namespace {

// Median-free best of a few passes over a buffer far larger than the last-level cache.
double read_bandwidth(int num_threads) {
  constexpr std::int64_t kBytes = std::int64_t{512} << 20;
  const Tensor buffer = Tensor::empty(DType::int64, {kBytes / 8});
  auto* words = buffer.data_as<std::uint64_t>();
  const std::int64_t count = kBytes / 8;
  parallel_for(count, num_threads, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i)
      words[i] = static_cast<std::uint64_t>(i);  // first touch per thread
  });
  double best = 0.0;
  for (int pass = 0; pass < 4; ++pass) {
    std::vector<std::uint64_t> partial(static_cast<std::size_t>(num_threads), 0);
    const auto start = std::chrono::steady_clock::now();
    parallel_for_indexed(count, num_threads, [&](std::int64_t begin, std::int64_t end, int thread) {
      std::uint64_t sum = 0;  // integer sums vectorise freely
      for (std::int64_t i = begin; i < end; ++i) sum += words[i];
      partial[thread] = sum;
    });
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    volatile std::uint64_t keep = partial[0];
    (void)keep;
    best = std::max(best, static_cast<double>(kBytes) / seconds / 1e9);
  }
  return best;
}

}  // namespace

MachineFloor measure_cpu_floor(int num_threads) {
  MachineFloor floor;
  floor.read_gb_per_s = read_bandwidth(num_threads);
  const CpuIsa isa = detect_cpu().isa;
  std::vector<double> per_thread(static_cast<std::size_t>(num_threads), 0.0);
#pragma omp parallel num_threads(num_threads)
  {
    const int thread = omp_get_thread_num();
    per_thread[thread] = isa >= CpuIsa::avx512 ? fma_peak_avx512(0.3)
                         : isa >= CpuIsa::avx2 ? fma_peak_avx2(0.3)
                                               : 0.0;
  }
  floor.fma_isa = isa >= CpuIsa::avx512 ? "avx512" : isa >= CpuIsa::avx2 ? "avx2" : "none";
  for (double value : per_thread) floor.fma_gflop_per_s += value;
  if (isa >= CpuIsa::avx512_bf16) {
    std::vector<double> dot(static_cast<std::size_t>(num_threads), 0.0);
#pragma omp parallel num_threads(num_threads)
    dot[omp_get_thread_num()] = bf16_dot_peak_avx512(0.3);
    for (double value : dot) floor.bf16_dot_gflop_per_s += value;
  }
  return floor;
}

}  // namespace fusedmoe::cli
