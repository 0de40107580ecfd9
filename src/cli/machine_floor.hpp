// This machine's ceilings, measured in the same run as the benchmark: streaming-read bandwidth and
// fp32-FMA peak, with the same threads the benchmark uses.
#pragma once

namespace fusedmoe::cli {

struct MachineFloor {
  double read_gb_per_s = 0.0;
  double fma_gflop_per_s = 0.0;
  const char* fma_isa = "";
  double bf16_dot_gflop_per_s = 0.0;  // vdpbf16ps peak, 0 without AVX512_BF16
  // The compute ceiling for a dtype: bf16 work may use the bf16 dot product where the CPU has it.
  double compute_peak(bool bf16) const {
    return bf16 && bf16_dot_gflop_per_s > fma_gflop_per_s ? bf16_dot_gflop_per_s : fma_gflop_per_s;
  }
};

MachineFloor measure_cpu_floor(int num_threads);

// FMA peak probes, one per ISA translation unit: GFLOP/s of one thread over `seconds`.
double fma_peak_avx512(double seconds);
double fma_peak_avx2(double seconds);
double bf16_dot_peak_avx512(double seconds);

}  // namespace fusedmoe::cli
