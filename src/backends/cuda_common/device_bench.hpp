// GPU timing and ceilings for `fusedmoe bench --device cuda` (plain C++: no CUDA headers).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "fusedmoe/device.hpp"

namespace fusedmoe::cuda {

// Times `body(stream)`: one eager warm-up run, then (when `use_graph`) a CUDA-graph capture of it replayed
// `repeats` times, else eager runs. The L2 cache is flushed before every timed run (not timed) by reading a
// buffer of max(4 x L2, 256 MiB) (evict_l2_by_reading), so no run starts with its data in L2 or with dirty
// lines to write back (FUSEDMOE_BENCH_FLUSH=write: by zeroing it, for comparisons); each run is bracketed
// by CUDA events. Returns the milliseconds of each run. Falls back to eager timing when capture fails, and
// says so through `graph_used`.
std::vector<double> time_on_device(int device, int repeats, bool use_graph, bool& graph_used,
                                   const std::function<void(StreamHandle)>& body);

// FUSEDMOE_BENCH_FLUSH: true for `write` (zero the flush buffer, the usual way, leaving dirty lines),
// false when unset or `read`; throws InvalidArgument naming both otherwise. l2_flush_description(): the same,
// as a phrase for the bench's header.
bool l2_flush_writes();
const char* l2_flush_description();

// Reads `bytes` of `buffer` on `stream` (L2-cached loads), leaving the L2 full of clean lines of it; `sink`
// is 4 bytes of device memory the kernel may write.
void evict_l2_by_reading(const void* buffer, std::size_t bytes, void* sink, StreamHandle stream);

// Fills `count` bf16 values at `buffer` with pseudo-random values uniform in [-1, 1] (bf16-rounded), a
// function of (index, seed).
void fill_uniform_bf16(void* buffer, std::int64_t count, std::uint32_t seed, StreamHandle stream);

// FUSEDMOE_BENCH_GEMM_OPERANDS: false when unset or `random`, true for `zeros` (the GEMM ceiling measured on
// zero matrices, as before session 9, for comparisons); throws InvalidArgument naming both otherwise.
bool gemm_ceiling_on_zeros();

struct DeviceCeilings {
  double copy_tb_per_s = 0.0;  // device-to-device copy, bytes read + written
  // cuBLAS bf16 GEMM 8192^3, fp32 accumulation, on random operands (the tensor cores' power and so their
  // sustained clock depend on the data), median of 20 runs after 5 warm-up runs.
  double bf16_gemm_tflop_per_s = 0.0;
};
DeviceCeilings measure_device_ceilings(int device);

}  // namespace fusedmoe::cuda
