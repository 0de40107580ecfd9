// Hopper's asynchronous pieces for the warp-specialised wgmma GEMMs (sm_90a only): shared-memory mbarriers
// (phase-parity waits, transaction counts), TMA tile loads that complete on an mbarrier, TMA tile stores in
// bulk groups, and per-warpgroup register reallocation (setmaxnreg).
#pragma once

#include <cuda.h>  // CUtensorMap

#include <cstdint>

namespace fusedmoe::cuda_fused {

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)

// An mbarrier completes a phase when `count` arrivals (and every expected transaction byte) have come in.
__device__ __forceinline__ void mbarrier_init(unsigned barrier, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(barrier), "r"(count) : "memory");
}
// Makes initialised mbarriers visible to the other threads and to the TMA unit (with a __syncthreads after).
__device__ __forceinline__ void mbarrier_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
__device__ __forceinline__ void mbarrier_arrive(unsigned barrier) {
  asm volatile("mbarrier.arrive.release.cta.shared::cta.b64 _, [%0];\n" ::"r"(barrier) : "memory");
}
// One arrival that also announces `bytes` the TMA will deliver against this phase.
__device__ __forceinline__ void mbarrier_arrive_expect_bytes(unsigned barrier, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.release.cta.shared::cta.b64 _, [%0], %1;\n" ::"r"(barrier),
               "r"(bytes)
               : "memory");
}
// One try_wait.parity on an mbarrier with acquire semantics at `scope` ("cta" or "cluster"): sets %0 to 1
// once the phase with parity %2 has completed.
#define FUSEDMOE_MBARRIER_TRY_WAIT(scope)   \
  "{\n"                                     \
  ".reg .pred complete;\n"                  \
  "mbarrier.try_wait.parity.acquire." scope \
  ".shared::cta.b64 complete, [%1], %2;\n"  \
  "selp.u32 %0, 1, 0, complete;\n"          \
  "}\n"

// Returns once the phase with parity `parity` has completed (a fresh barrier counts its phase "1" as done,
// so a producer's first wait for a free slot passes at once).
__device__ __forceinline__ void mbarrier_wait(unsigned barrier, unsigned parity) {
  unsigned done = 0;
  do {
    asm volatile(FUSEDMOE_MBARRIER_TRY_WAIT("cta") : "=r"(done) : "r"(barrier), "r"(parity) : "memory");
  } while (done == 0);
}

// The box at rows row0.. of k-panel `panel` of matrix `matrix` of a k-panel weights map
// (cuda::bf16_panels_tensor_map; coordinates innermost first: column in panel, row, panel, matrix) into
// shared memory; its bytes complete on `barrier`.
__device__ __forceinline__ void tma_load_panel(unsigned destination, const CUtensorMap* map, int row0,
                                               int panel, int matrix, unsigned barrier) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, "
      "%4, %5}], [%6];\n" ::"r"(destination),
      "l"(reinterpret_cast<std::uint64_t>(map)), "r"(0), "r"(row0), "r"(panel), "r"(matrix), "r"(barrier)
      : "memory");
}
// A box of a 2-D map (innermost first: {column, row}) into this CTA's shared memory at `destination`
// (1024-byte aligned for the 128-byte swizzle); the mbarrier at `barrier` receives its bytes.
__device__ __forceinline__ void tma_load_2d(unsigned destination, const CUtensorMap* map, int column, int row,
                                            unsigned barrier) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, "
      "%3}], "
      "[%4];\n" ::"r"(destination),
      "l"(reinterpret_cast<std::uint64_t>(map)), "r"(column), "r"(row), "r"(barrier)
      : "memory");
}
// The same box written to the same offset of every CTA of the cluster named in `cta_mask` (bit r = rank r);
// each destination's mbarrier at `barrier`'s offset receives the bytes it got.
__device__ __forceinline__ void tma_load_panel_multicast(unsigned destination, const CUtensorMap* map,
                                                         int row0, int panel, int matrix, unsigned barrier,
                                                         std::uint16_t cta_mask) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.multicast::cluster "
      "[%0], [%1, {%2, %3, %4, %5}], [%6], %7;\n" ::"r"(destination),
      "l"(reinterpret_cast<std::uint64_t>(map)), "r"(0), "r"(row0), "r"(panel), "r"(matrix), "r"(barrier),
      "h"(cta_mask)
      : "memory");
}
// A box of shared memory (in the map's swizzle) to the map's tensor at {column, row} (innermost first);
// parts of the box outside the tensor are not written. Asynchronous: the issuing thread commits its stores
// as a bulk group and waits for the group before it reuses the source or tells another block the rows are
// written.
__device__ __forceinline__ void tma_store_2d(const CUtensorMap* map, unsigned source, int column, int row) {
  asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%1, %2}], [%3];\n" ::"l"(
                   reinterpret_cast<std::uint64_t>(map)),
               "r"(column), "r"(row), "r"(source)
               : "memory");
}
__device__ __forceinline__ void bulk_commit_group() {
  asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
}
// Returns once this thread's committed bulk stores are complete: written to global memory and visible to
// this thread (so a release after it publishes them), their shared-memory sources free.
__device__ __forceinline__ void bulk_wait_all() {
  asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");
}
// Returns once this thread's committed bulk stores have read their shared-memory sources (they may still be
// on their way to global memory).
__device__ __forceinline__ void bulk_wait_all_read() {
  asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
}
// Orders this thread's global-memory accesses through the async proxy (TMA) with those through the generic
// proxy (another block's loads after it acquires this thread's release).
__device__ __forceinline__ void fence_async_global() {
  asm volatile("fence.proxy.async.global;\n" ::: "memory");
}
__device__ __forceinline__ void tma_prefetch_descriptor(const CUtensorMap* map) {
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<std::uint64_t>(map)) : "memory");
}

// A 32-bit global word read with acquire semantics at GPU scope (pairs with another block's fenced atomic).
__device__ __forceinline__ unsigned load_acquire_gpu(const unsigned* address) {
  unsigned value;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];\n" : "=r"(value) : "l"(address) : "memory");
  return value;
}

// Thread-block clusters: this CTA's rank, another CTA's address of a shared-memory location of this CTA
// (shared::cluster window), and the operations on such an address.
__device__ __forceinline__ unsigned cluster_rank() {
  unsigned rank;
  asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(rank));
  return rank;
}
__device__ __forceinline__ unsigned cluster_size() {
  unsigned size;
  asm volatile("mov.u32 %0, %%cluster_nctarank;\n" : "=r"(size));
  return size;
}
__device__ __forceinline__ unsigned cluster_address(unsigned local, unsigned rank) {
  unsigned remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(remote) : "r"(local), "r"(rank));
  return remote;
}
// One arrival on an mbarrier of another CTA of the cluster. `release_cluster`: orders this thread's earlier
// accesses (and stores into that CTA's shared memory) before it at cluster scope; without, CTA scope only
// (enough to say "my reads of your stage retired": no data goes with it, and a cluster-scope release in
// every k-tile stalls the issuing warp).
template <bool ReleaseCluster>
__device__ __forceinline__ void mbarrier_arrive_remote(unsigned remote_barrier) {
  if constexpr (ReleaseCluster) {
    asm volatile("mbarrier.arrive.release.cluster.shared::cluster.b64 _, [%0];\n" ::"r"(remote_barrier)
                 : "memory");
  } else {
    asm volatile("mbarrier.arrive.release.cta.shared::cluster.b64 _, [%0];\n" ::"r"(remote_barrier)
                 : "memory");
  }
}
// mbarrier_wait for a barrier that other CTAs of the cluster arrive on (acquire at cluster scope).
__device__ __forceinline__ void mbarrier_wait_cluster(unsigned barrier, unsigned parity) {
  unsigned done = 0;
  do {
    asm volatile(FUSEDMOE_MBARRIER_TRY_WAIT("cluster") : "=r"(done) : "r"(barrier), "r"(parity) : "memory");
  } while (done == 0);
}
__device__ __forceinline__ void store_shared_cluster_s64(unsigned remote, long long value) {
  asm volatile("st.shared::cluster.s64 [%0], %1;\n" ::"r"(remote), "l"(value) : "memory");
}
// Every thread of every CTA of the cluster (a CTA must not exit while another may still write into its
// shared memory or arrive on its barriers; nor may one start before the others initialised theirs).
__device__ __forceinline__ void cluster_sync() {
  asm volatile("barrier.cluster.arrive.release;\nbarrier.cluster.wait.acquire;\n" ::: "memory");
}

// 64-bit shared-memory words the producer hands the consumers (ordered by the mbarriers around them), and
// 32-bit stores by address.
__device__ __forceinline__ void store_shared_s64(unsigned address, long long value) {
  asm volatile("st.shared.s64 [%0], %1;\n" ::"r"(address), "l"(value) : "memory");
}
__device__ __forceinline__ void store_shared_b32(unsigned address, unsigned value) {
  asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(address), "r"(value) : "memory");
}
__device__ __forceinline__ long long load_shared_s64(unsigned address) {
  long long value;
  asm volatile("ld.shared.s64 %0, [%1];\n" : "=l"(value) : "r"(address) : "memory");
  return value;
}
// bar.sync on a named barrier (1..15; 0 is __syncthreads) for `threads` threads, a multiple of 32.
template <int Barrier, int Threads>
__device__ __forceinline__ void named_barrier_sync() {
  asm volatile("bar.sync %0, %1;\n" ::"n"(Barrier), "n"(Threads) : "memory");
}

// A warpgroup gives registers back (producers) or takes them (consumers); every warp of it executes this.
template <int Registers>
__device__ __forceinline__ void warpgroup_release_registers() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(Registers));
}
template <int Registers>
__device__ __forceinline__ void warpgroup_claim_registers() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(Registers));
}

#endif  // sm_90a

}  // namespace fusedmoe::cuda_fused
