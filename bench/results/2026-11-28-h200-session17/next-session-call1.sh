#!/usr/bin/env bash
# Session 18's first call (prepared in session 17; ~6 minutes): the producers' cp.async copies signalled as
# they land (bench/results/2026-11-28-h200-session17/async-signal-untested.patch). Session 17's stall
# sampling had GEMM1's consumers waiting on full stages and its producer on empty ones, in lockstep: with the
# lagged signal, stage s is signalled only once the producer issues s + 2, which waits for the consumers to
# release s - 2, just before they wait for s. The patch: cp.async.mbarrier.arrive.noinc per producer thread
# and stage, the consumers fencing (fence.proxy.async) before their wgmma; FUSEDMOE_CUDA_FUSED_ASYNC_SIGNAL=off
# restores the lag (=unfenced: no consumer fence, a measurement of its cost only). (1) its bit test alone, bounded (a wrong arrival count hangs), (2) gpu_check on the
# patch's binaries, (3) A/B main / patch / patch with the switch off on every preset at M = 1024-16384.
# .prebuilt: fusedmoe / fusedmoe_tests = main (e2977d0); fusedmoe3 / fusedmoe_tests3 = main + the patch.
set -u
cd "$(dirname "$0")/.."
scripts/unpack_prebuilt.sh .prebuilt >/dev/null
P=.prebuilt
chmod +x $P/fusedmoe3 $P/fusedmoe_tests3
export LD_LIBRARY_PATH=$PWD/$P:/usr/local/cuda/lib64
nvidia-smi --query-gpu=name --format=csv,noheader
timeout 90 $P/fusedmoe_tests3 --gtest_filter='CudaFusedTiles.AsyncSignal*' > $OUT/test.txt 2>&1
rc=$?; echo async-signal bit test rc $rc; grep -E "^\[  (PASSED|FAILED)|Failure" $OUT/test.txt | head
[ $rc -eq 0 ] || { echo "failed or hung: no gpu_check, no A/B"; exit 0; }
VARIANTS="main $P/fusedmoe; async $P/fusedmoe3; lagged $P/fusedmoe3 FUSEDMOE_CUDA_FUSED_ASYNC_SIGNAL=off; unfenced $P/fusedmoe3 FUSEDMOE_CUDA_FUSED_ASYNC_SIGNAL=unfenced" TOKENS=1024,4096,16384 ROUNDS=2 timeout 280 scripts/gpu_ab.sh $OUT/ab.txt > /dev/null 2>&1
echo ab rc $?
scripts/ab_summary.py $OUT/ab.txt main
mkdir -p $P/held && mv $P/fusedmoe_tests $P/fusedmoe $P/held/
cp $P/fusedmoe_tests3 $P/fusedmoe_tests && cp $P/fusedmoe3 $P/fusedmoe && chmod +x $P/fusedmoe_tests $P/fusedmoe
CPU_TESTS=0 PREBUILT=$P timeout 240 scripts/gpu_check.sh $OUT/gc > $OUT/gpu_check.txt 2>&1
echo gpu_check rc $?
grep -A12 "== summary" $OUT/gpu_check.txt
grep -E "^\[  FAILED" $OUT/gc/gpu_check/cuda_tests.log | head
mv $P/held/fusedmoe_tests $P/held/fusedmoe $P/ && rmdir $P/held
rm -rf $OUT/gc
