// Micro-probe: how fast can 192 blocks of 128 threads stream an M=1 decode GEMM's weights (qwen3-30b-a3b's
// GEMM1: 8 experts x [1536, 2048] bf16 = 50 MB) through a cp.async pipeline, by depth per stage (block_k),
// stages, and layout (row-major rows, as cuda_fused stores them, or each [64 rows x block_k] tile stored
// contiguously)? Standalone: nvcc -O3 -arch=sm_90a -std=c++17 weight_stream.cu -o weight_stream
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "micro_common.cuh"

constexpr int kRows = 64, kThreads = 128;

// L2 eviction by reading (no dirty lines left for the timed kernel to write back).
__global__ void read_flush(const uint4* buffer, long count, unsigned* sink) {
  unsigned folded = 0;
  for (long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x; i < count;
       i += gridDim.x * static_cast<long>(blockDim.x)) {
    const uint4 v = __ldcg(buffer + i);
    folded ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (folded == 0x9e3779b9u) *sink = folded;
}
static bool g_write_flush = false;
void flush_l2(void* flush, size_t bytes, int rep, float* sink) {
  if (g_write_flush) {
    CHECK(cudaMemsetAsync(flush, rep, bytes));
  } else {
    read_flush<<<1024, 256>>>(static_cast<const uint4*>(flush), bytes / 16,
                              reinterpret_cast<unsigned*>(sink));
  }
}
static long kK = 2048, kTotalRows = 8 * 1536;  // the shape under test (set in main)

// The cp.async pipeline both kernels run: `count` stages of kStageBytes each, Stages deep; load(stage, t)
// issues tile t into stage `stage`. Returns a value read from every stage (keeps the loads alive).
template <int Stages, int StageBytes, class Load>
__device__ float run_pipeline(int count, const unsigned char* shared, Load load) {
  for (int s = 0; s < Stages - 1; ++s) {
    if (s < count) load(s, s);
    asm volatile("cp.async.commit_group;\n");
  }
  float acc = 0.0f;
  for (int t = 0; t < count; ++t) {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(Stages - 2) : "memory");
    __syncthreads();
    const int next = t + Stages - 1;
    if (next < count) load(next % Stages, next);
    asm volatile("cp.async.commit_group;\n");
    acc += reinterpret_cast<const float*>(shared + (t % Stages) * StageBytes)[threadIdx.x % 128];
  }
  return acc;
}

// Median time in microseconds of 15 launches of `launch`, each after an L2 flush.
template <class Launch>
double median_us(void* flush, size_t flush_bytes, float* sink, Launch launch) {
  int rep = 0;
  return median_ms(15, launch, [&] { flush_l2(flush, flush_bytes, rep++, sink); }) * 1e3;
}

template <int BlockK, int Stages, bool Blocked>
__global__ void __launch_bounds__(kThreads)
    stream_kernel(const unsigned short* weights, float* sink, long depth) {
  extern __shared__ __align__(128) unsigned char shared[];
  constexpr int kChunksPerRow = BlockK / 8, kChunks = kRows * kChunksPerRow / kThreads;
  constexpr int kStageBytes = kRows * BlockK * 2;
  const int k_tiles = static_cast<int>(depth / BlockK);
  const long block_row0 = static_cast<long>(blockIdx.x) * kRows;
  const unsigned base = static_cast<unsigned>(__cvta_generic_to_shared(shared));
  const float acc = run_pipeline<Stages, kStageBytes>(k_tiles, shared, [&](int stage, int k_tile) {
#pragma unroll
    for (int i = 0; i < kChunks; ++i) {
      const int chunk = threadIdx.x + i * kThreads, row = chunk / kChunksPerRow,
                column = (chunk % kChunksPerRow) * 8;
      const unsigned short* source =
          Blocked ? weights + (static_cast<long>(blockIdx.x) * k_tiles + k_tile) * kRows * BlockK +
                        row * BlockK + column
                  : weights + (block_row0 + row) * depth + static_cast<long>(k_tile) * BlockK + column;
      asm volatile(
          "cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(base + stage * kStageBytes + chunk * 16),
          "l"(source));
    }
  });
  if (acc == 12345.0f) sink[blockIdx.x] = acc;
}

void report(const char* what, double us) {
  std::printf("%-52s %9.1f us  %6.0f GB/s\n", what, us, kTotalRows * kK * 2.0 / us / 1e3);
}

template <int BlockK, int Stages, bool Blocked>
void measure(const unsigned short* weights, float* sink, void* flush, size_t flush_bytes) {
  constexpr int kShared = Stages * kRows * BlockK * 2;
  auto kernel = stream_kernel<BlockK, Stages, Blocked>;
  CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kShared));
  const double us = median_us(flush, flush_bytes, sink, [&] {
    kernel<<<kTotalRows / kRows, kThreads, kShared>>>(weights, sink, kK);
    CHECK(cudaGetLastError());
  });
  char what[96];
  std::snprintf(what, sizeof what, "block_k %3d stages %d %s", BlockK, Stages, Blocked ? "blocked" : "rows");
  report(what, us);
}

// The same bytes as contiguous [64 x block_k] tiles split evenly over `blocks` blocks of `Threads` threads
// (what a persistent or split-K decode kernel would do): how does bandwidth grow with blocks per SM?
template <int BlockK, int Stages, int Threads>
__global__ void __launch_bounds__(Threads)
    split_kernel(const unsigned short* weights, float* sink, long tiles) {
  extern __shared__ __align__(128) unsigned char shared[];
  constexpr int kChunks = kRows * BlockK / 8 / Threads;
  constexpr int kStageBytes = kRows * BlockK * 2;
  const long first = tiles * blockIdx.x / gridDim.x, last = tiles * (blockIdx.x + 1) / gridDim.x;
  const unsigned base = static_cast<unsigned>(__cvta_generic_to_shared(shared));
  const float acc =
      run_pipeline<Stages, kStageBytes>(static_cast<int>(last - first), shared, [&](int stage, int t) {
#pragma unroll
        for (int i = 0; i < kChunks; ++i) {
          const int chunk = threadIdx.x + i * Threads;
          const unsigned short* source = weights + (first + t) * kRows * BlockK + chunk * 8;
          asm volatile(
              "cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(base + stage * kStageBytes + chunk * 16),
              "l"(source));
        }
      });
  if (acc == 12345.0f) sink[blockIdx.x] = acc;
}

template <int BlockK, int Stages, int Threads>
void measure_split(int blocks, const unsigned short* weights, float* sink, void* flush, size_t flush_bytes) {
  constexpr int kShared = Stages * kRows * BlockK * 2;
  auto kernel = split_kernel<BlockK, Stages, Threads>;
  CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kShared));
  const long tiles = kTotalRows / kRows * (kK / BlockK);
  const double us = median_us(flush, flush_bytes, sink, [&] {
    kernel<<<blocks, Threads, kShared>>>(weights, sink, tiles);
    CHECK(cudaGetLastError());
  });
  char what[96];
  std::snprintf(what, sizeof what, "split: blocks %4d threads %3d block_k %3d stages %d", blocks, Threads,
                BlockK, Stages);
  report(what, us);
}

int main(int argc, char** argv) {
  bool large = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "write") g_write_flush = true;
    if (arg == "large") large = true;
  }
  if (large) {  // a long prefill-scale stream: 64 of deepseek-v3's GEMM1 slices, [4096 x 7168] each (3.8 GB)
    kK = 7168;
    kTotalRows = 64L * 4096;
  }
  unsigned short* weights = nullptr;
  float* sink = nullptr;
  void* flush = nullptr;
  const size_t flush_bytes = 256u << 20;
  CHECK(cudaMalloc(&weights, static_cast<size_t>(kTotalRows) * kK * 2));
  CHECK(cudaMalloc(&sink, 4096 * sizeof(float)));
  CHECK(cudaMalloc(&flush, flush_bytes));
  CHECK(cudaMemset(weights, 1, static_cast<size_t>(kTotalRows) * kK * 2));
  std::printf("%ld rows x %ld, L2 flush by %s\n", kTotalRows, kK,
              g_write_flush ? "zeroing (dirty lines)" : "reading");
  measure<64, 4, false>(weights, sink, flush, flush_bytes);
  measure<64, 8, false>(weights, sink, flush, flush_bytes);
  measure<128, 4, false>(weights, sink, flush, flush_bytes);
  measure<128, 6, false>(weights, sink, flush, flush_bytes);
  measure<256, 3, false>(weights, sink, flush, flush_bytes);
  measure<256, 4, false>(weights, sink, flush, flush_bytes);
  measure<64, 4, true>(weights, sink, flush, flush_bytes);
  measure<64, 8, true>(weights, sink, flush, flush_bytes);
  measure<128, 4, true>(weights, sink, flush, flush_bytes);
  measure<256, 4, true>(weights, sink, flush, flush_bytes);
  if (large) return 0;
  for (int blocks : {128, 192, 264, 528, 1056}) {
    measure_split<64, 4, 128>(blocks, weights, sink, flush, flush_bytes);
    measure_split<64, 8, 128>(blocks, weights, sink, flush, flush_bytes);
    measure_split<128, 4, 256>(blocks, weights, sink, flush, flush_bytes);
  }
  return 0;
}
