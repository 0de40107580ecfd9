#include "core/threading.hpp"

#include <omp.h>
#include <sched.h>

#include "core/env.hpp"

namespace fusedmoe {

namespace {
int cores_available() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int count = CPU_COUNT(&set);
    if (count > 0) return count;
  }
  return omp_get_num_procs();
}
}  // namespace

int omp_team_size() {
  return omp_get_num_threads();
}
int omp_thread_index() {
  return omp_get_thread_num();
}

int resolve_num_threads(const ExecContext& context) {
  if (omp_in_parallel()) return 1;
  if (context.num_threads > 0) return context.num_threads;
  static const int from_env = env_positive_int("FUSEDMOE_NUM_THREADS").value_or(cores_available());
  return from_env;
}

}  // namespace fusedmoe
