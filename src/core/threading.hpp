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

// Runs body(begin, end) over [0, count): each thread first takes one contiguous range, together covering
// `static_share` of the items, then the rest one item at a time as threads free up. For streaming work of
// equal items on a machine that may slow one thread down (steal time, a busy neighbour): each thread reads
// one long contiguous run, and no thread waits at the join for a slowed one to finish a whole half.
template <class Body>
void parallel_for_mostly_static(std::int64_t count, int num_threads, double static_share, Body&& body) {
  if (count <= 0) return;
  if (num_threads <= 1 || count == 1) {
    body(std::int64_t{0}, count);
    return;
  }
  std::int64_t next_item = 0;  // the dynamic tail's next item (OpenMP atomic capture)
#pragma omp parallel num_threads(num_threads)
  {
    const int thread_count = omp_team_size();
    const int thread_index = omp_thread_index();
    const std::int64_t head = static_cast<std::int64_t>(static_share * static_cast<double>(count));
    const std::int64_t chunk = head / thread_count;
    if (chunk > 0) body(chunk * thread_index, chunk * (thread_index + 1));
    for (;;) {
      std::int64_t item;
#pragma omp atomic capture
      item = next_item++;
      item += chunk * thread_count;
      if (item >= count) break;
      body(item, item + 1);
    }
  }
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
