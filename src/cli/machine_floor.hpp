// This machine's ceilings, measured in the same run as the benchmark: streaming-read bandwidth and
// fp32-FMA peak, with the same threads the benchmark uses.
#pragma once

namespace fusedmoe::cli {

struct MachineFloor {
  double read_gb_per_s = 0.0;
  double fma_gflop_per_s = 0.0;
  const char* fma_isa = "";
};

MachineFloor measure_cpu_floor(int num_threads);

// FMA peak probes, one per ISA translation unit: GFLOP/s of one thread over `seconds`.
double fma_peak_avx512(double seconds);
double fma_peak_avx2(double seconds);

}  // namespace fusedmoe::cli
