// CPU threading: one OpenMP team per call, sized by the ExecContext, FUSEDMOE_NUM_THREADS or the
// cores available to the process. Inside an existing parallel region we run serially (no
// oversubscription when the caller already runs threads).
#pragma once

#include <cstdint>

#include "fusedmoe/device.hpp"

namespace fusedmoe {

int omp_team_size();     // threads in the current OpenMP team
int omp_thread_index();  // this thread's index in it

// Threads a call with this context will use (>= 1).
int resolve_num_threads(const ExecContext& context);

// Runs body(begin, end, thread) over [0, count) split into contiguous ranges, one per thread;
// `thread` is in [0, num_threads) (for per-thread scratch).
template <class Body>
void parallel_for_indexed(std::int64_t count, int num_threads, Body&& body) {
  if (count <= 0) return;
  if (num_threads <= 1 || count == 1) {
    body(std::int64_t{0}, count, 0);
    return;
  }
#pragma omp parallel num_threads(num_threads)
  {
    const int thread_count = omp_team_size();
    const int thread_index = omp_thread_index();
    const std::int64_t chunk = (count + thread_count - 1) / thread_count;
    const std::int64_t begin = chunk * thread_index;
    const std::int64_t end = begin + chunk < count ? begin + chunk : count;
    if (begin < end) body(begin, end, thread_index);
  }
}

// Runs body(begin, end) over [0, count) split into contiguous ranges, one per thread.
template <class Body>
void parallel_for(std::int64_t count, int num_threads, Body&& body) {
  parallel_for_indexed(count, num_threads,
                       [&](std::int64_t begin, std::int64_t end, int) { body(begin, end); });
}

// Dynamic schedule over independent items, for uneven work (one item at a time).
template <class Body>
void parallel_for_dynamic(std::int64_t count, int num_threads, Body&& body) {
  if (count <= 0) return;
  if (num_threads <= 1 || count == 1) {
    for (std::int64_t index = 0; index < count; ++index) body(index);
    return;
  }
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads)
  for (std::int64_t index = 0; index < count; ++index) body(index);
}

}  // namespace fusedmoe
