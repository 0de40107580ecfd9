// Micro-probe: how fast does a persistent TMA pipeline (one producer thread, an mbarrier ring, one block per
// SM, tiles handed out by a device counter: the shape of cuda_fused's warp-specialised tiles) stream a long
// run of expert weights, by weight layout and stage shape? 64 slices of deepseek-v3's GEMM1 ([4096 x 7168]
// bf16 each, 3.8 GB), every stage 32 KiB.
//   rows   : row-major [N, K] (how cuda_fused stores weights today), one 64 x 256 box per stage: each
//            stage reads 256 pieces of 128 bytes, 14 KiB apart.
//   panels : [K/64][N][64] per expert ("k-panels"), the same 64 x 256 box on a 4-D map: each stage is one
//            contiguous 32 KiB run; the shared-memory image is identical, so a kernel only changes its map.
//   bulk   : the panel layout read by 1-D bulk copies (no tensor map).
//   rows_k128 / rows_k256 : row-major, 2 boxes of 64 x 128 or 4 boxes of 64 x 64 per stage (256 or 512
//            contiguous bytes per row).
// Plus a plain vectorised read kernel and a device-to-device copy as references.
// Standalone: nvcc -O3 -arch=sm_90a -std=c++17 tma_stream.cu -o tma_stream && ./tma_stream
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "../../src/backends/cuda_fused/kernels/sm90_async_ops.cuh"  // mbarriers
#include "micro_common.cuh"

using namespace fusedmoe::cuda_fused;

constexpr long kExperts = 64, kN = 4096, kK = 7168;
constexpr int kStageBytes = 32768;
enum Mode { kRows = 0, kPanels = 1, kBulk = 2, kRowsK128 = 3, kRowsK256 = 4 };

__device__ __forceinline__ void tma3(unsigned dst, const CUtensorMap* map, int x, int y, int z,
                                     unsigned bar) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, "
      "%4}], [%5];\n" ::"r"(dst),
      "l"(reinterpret_cast<unsigned long long>(map)), "r"(x), "r"(y), "r"(z), "r"(bar)
      : "memory");
}
__device__ __forceinline__ void tma4(unsigned dst, const CUtensorMap* map, int x, int y, int z, int w,
                                     unsigned bar) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, "
      "%4, %5}], [%6];\n" ::"r"(dst),
      "l"(reinterpret_cast<unsigned long long>(map)), "r"(x), "r"(y), "r"(z), "r"(w), "r"(bar)
      : "memory");
}
__device__ __forceinline__ void bulk1(unsigned dst, const void* src, unsigned bytes, unsigned bar) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(dst),
      "l"(src), "r"(bytes), "r"(bar)
      : "memory");
}

// Rows of N a tile covers and the K a stage covers, per mode.
__host__ __device__ constexpr int tile_rows(int mode) {
  return mode == kRowsK128 ? 128 : mode == kRowsK256 ? 64 : 256;
}
__host__ __device__ constexpr int stage_k(int mode) {
  return mode == kRowsK128 ? 128 : mode == kRowsK256 ? 256 : 64;
}

template <int Mode, int Stages>
__global__ void __launch_bounds__(64, 1)
    tma_stream(const __grid_constant__ CUtensorMap map, const unsigned char* raw, int* counter, float* sink) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)  // the mbarrier wrappers' guard
  extern __shared__ __align__(1024) unsigned char shared[];
  __shared__ __align__(8) unsigned long long full[Stages], empty[Stages];
  __shared__ int header[Stages];
  const unsigned ring = (static_cast<unsigned>(__cvta_generic_to_shared(shared)) + 1023u) & ~1023u;
  const unsigned full0 = static_cast<unsigned>(__cvta_generic_to_shared(full));
  const unsigned empty0 = static_cast<unsigned>(__cvta_generic_to_shared(empty));
  if (threadIdx.x == 0) {
    for (int s = 0; s < Stages; ++s) {
      mbarrier_init(full0 + 8 * s, 1);
      mbarrier_init(empty0 + 8 * s, 1);
    }
    mbarrier_init_fence();
  }
  __syncthreads();
  constexpr int kTilesPerExpert = kN / tile_rows(Mode), kSteps = kK / stage_k(Mode);
  const int tiles = kExperts * kTilesPerExpert;
  if (threadIdx.x == 0) {  // producer
    int slot = 0;
    unsigned phase = 0;
    for (;;) {
      const int tile = atomicAdd(counter, 1);
      const int expert = tile / kTilesPerExpert, row0 = (tile % kTilesPerExpert) * tile_rows(Mode);
      const int steps = tile < tiles ? kSteps : 1;
      for (int step = 0; step < steps; ++step) {
        mbarrier_wait(empty0 + 8 * slot, phase ^ 1);
        const unsigned bar = full0 + 8 * slot, dst = ring + slot * kStageBytes;
        if (tile >= tiles) {
          header[slot] = -1;
          mbarrier_arrive(bar);
        } else {
          header[slot] = tile;
          mbarrier_arrive_expect_bytes(bar, kStageBytes);
          if (Mode == kRows) {
            tma3(dst, &map, step * 64, row0, expert, bar);
          } else if (Mode == kPanels) {
            tma4(dst, &map, 0, row0, step, expert, bar);
          } else if (Mode == kBulk) {
            const long element = ((expert * (kK / 64) + step) * kN + row0) * 64L;
            bulk1(dst, raw + element * 2, kStageBytes, bar);
          } else {
            constexpr int kBoxes = stage_k(Mode) / 64;
#pragma unroll
            for (int b = 0; b < kBoxes; ++b) {
              tma3(dst + b * (kStageBytes / kBoxes), &map, step * stage_k(Mode) + b * 64, row0, expert, bar);
            }
          }
        }
        if (++slot == Stages) {
          slot = 0;
          phase ^= 1;
        }
      }
      if (tile >= tiles) break;
    }
  } else if (threadIdx.x == 32) {  // consumer
    int slot = 0;
    unsigned phase = 0;
    float acc = 0.0f;
    for (;;) {
      mbarrier_wait(full0 + 8 * slot, phase);
      if (header[slot] < 0) break;
      unsigned value;
      asm volatile("ld.shared.u32 %0, [%1];\n" : "=r"(value) : "r"(ring + slot * kStageBytes) : "memory");
      acc += __uint_as_float(value);
      mbarrier_arrive(empty0 + 8 * slot);
      if (++slot == Stages) {
        slot = 0;
        phase ^= 1;
      }
    }
    if (acc == 12345.0f) sink[blockIdx.x] = acc;
  }
#endif
}

__global__ void plain_read(const uint4* data, long count, float* sink) {
  unsigned folded = 0;
  const long stride = static_cast<long>(gridDim.x) * blockDim.x;
  long i = blockIdx.x * static_cast<long>(blockDim.x) + threadIdx.x;
  for (; i + 3 * stride < count; i += 4 * stride) {
    const uint4 a = __ldcs(data + i), b = __ldcs(data + i + stride), c = __ldcs(data + i + 2 * stride),
                d = __ldcs(data + i + 3 * stride);
    folded ^= a.x ^ b.y ^ c.z ^ d.w;
  }
  for (; i < count; i += stride) folded ^= __ldcs(data + i).x;
  if (folded == 0x9e3779b9u) sink[0] = static_cast<float>(folded);
}

PFN_cuTensorMapEncodeTiled_v12000 encoder() {
  void* pointer = nullptr;
  cudaDriverEntryPointQueryResult found{};
  CHECK(
      cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &pointer, 12000, cudaEnableDefault, &found));
  if (found != cudaDriverEntryPointSuccess) std::exit(2);
  return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(pointer);
}

CUtensorMap make_map(void* base, int mode, CUtensorMapL2promotion promotion) {
  CUtensorMap map{};
  CUresult r;
  if (mode == kPanels || mode == kBulk) {
    const cuuint64_t sizes[4] = {64, kN, kK / 64, kExperts};
    const cuuint64_t strides[3] = {128, kN * 128, kN * kK * 2};
    const cuuint32_t box[4] = {64, 256, 1, 1}, es[4] = {1, 1, 1, 1};
    r = encoder()(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 4, base, sizes, strides, box, es,
                  CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, promotion,
                  CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  } else {
    const cuuint64_t sizes[3] = {kK, kN, kExperts};
    const cuuint64_t strides[2] = {kK * 2, kN * kK * 2};
    const cuuint32_t box[3] = {64, static_cast<cuuint32_t>(tile_rows(mode)), 1}, es[3] = {1, 1, 1};
    r = encoder()(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, base, sizes, strides, box, es,
                  CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, promotion,
                  CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  }
  if (r != CUDA_SUCCESS) {
    std::printf("encode failed %d\n", static_cast<int>(r));
    std::exit(3);
  }
  return map;
}

const double kBytes = static_cast<double>(kExperts) * kN * kK * 2;

template <int Mode, int Stages>
void measure(const char* name, void* weights, int* counter, float* sink, int sms,
             CUtensorMapL2promotion promotion = CU_TENSOR_MAP_L2_PROMOTION_L2_256B) {
  const CUtensorMap map = make_map(weights, Mode, promotion);
  auto kernel = tma_stream<Mode, Stages>;
  const int shared = Stages * kStageBytes + 1024;
  CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, shared));
  // The tile counter is reset outside the timed region.
  const double ms = median_ms(
      7,
      [&] {
        kernel<<<sms, 64, shared>>>(map, static_cast<const unsigned char*>(weights), counter, sink);
        CHECK(cudaGetLastError());
      },
      [&] { CHECK(cudaMemsetAsync(counter, 0, sizeof(int))); });
  const char* p = promotion == CU_TENSOR_MAP_L2_PROMOTION_NONE      ? "none"
                  : promotion == CU_TENSOR_MAP_L2_PROMOTION_L2_128B ? "128B"
                                                                    : "256B";
  std::printf("%-10s stages %d promo %-4s  %8.3f ms  %6.3f TB/s\n", name, Stages, p, ms, kBytes / ms / 1e9);
}

int main() {
  int sms = 0;
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  void* weights = nullptr;
  int* counter = nullptr;
  float* sink = nullptr;
  CHECK(cudaMalloc(&weights, static_cast<size_t>(kBytes)));
  CHECK(cudaMalloc(&counter, sizeof(int)));
  CHECK(cudaMalloc(&sink, 4096 * sizeof(float)));
  CHECK(cudaMemset(weights, 1, static_cast<size_t>(kBytes)));
  std::printf("%ld x [%ld x %ld] bf16 = %.2f GB, %d SMs, one block per SM, 32 KiB stages\n", kExperts, kN, kK,
              kBytes / 1e9, sms);
  for (int round = 0; round < 2; ++round) {
    std::printf("-- round %d\n", round);
    const double copy_ms = median_ms(7, [&] {
      CHECK(cudaMemcpyAsync(static_cast<char*>(weights) + static_cast<size_t>(kBytes / 2), weights,
                            static_cast<size_t>(kBytes / 2), cudaMemcpyDeviceToDevice));
    });
    std::printf("d2d copy of half   %8.3f ms  %6.3f TB/s (read + write)\n", copy_ms, kBytes / copy_ms / 1e9);
    const double read_ms = median_ms(7, [&] {
      plain_read<<<sms * 8, 512>>>(static_cast<const uint4*>(weights), static_cast<long>(kBytes / 16), sink);
      CHECK(cudaGetLastError());
    });
    std::printf("plain read         %8.3f ms  %6.3f TB/s\n", read_ms, kBytes / read_ms / 1e9);
    measure<kRows, 6>("rows", weights, counter, sink, sms);
    measure<kRows, 6>("rows", weights, counter, sink, sms, CU_TENSOR_MAP_L2_PROMOTION_NONE);
    measure<kRows, 6>("rows", weights, counter, sink, sms, CU_TENSOR_MAP_L2_PROMOTION_L2_128B);
    measure<kRows, 4>("rows", weights, counter, sink, sms);
    measure<kRowsK128, 6>("rows_k128", weights, counter, sink, sms);
    measure<kRowsK256, 6>("rows_k256", weights, counter, sink, sms);
    measure<kPanels, 6>("panels", weights, counter, sink, sms);
    measure<kPanels, 6>("panels", weights, counter, sink, sms, CU_TENSOR_MAP_L2_PROMOTION_NONE);
    measure<kPanels, 4>("panels", weights, counter, sink, sms);
    measure<kPanels, 3>("panels", weights, counter, sink, sms);
    measure<kBulk, 6>("bulk", weights, counter, sink, sms);
    measure<kBulk, 4>("bulk", weights, counter, sink, sms);
  }
  return 0;
}
