#!/usr/bin/env bash
# Session 18's sixth call: the warp-specialised epilogues' rows loaded during the main loop
# (FUSEDMOE_CUDA_FUSED_EARLY_ROWS=on, the patch's default) against after it (=off): bit test, A/B, gpu_check.
set -u
cd "$(dirname "$0")/.."
scripts/unpack_prebuilt.sh .prebuilt >/dev/null
P=.prebuilt
export LD_LIBRARY_PATH=$PWD/$P:/usr/local/cuda/lib64
nvidia-smi --query-gpu=name --format=csv,noheader; cat $P/commit.txt
timeout 120 $P/fusedmoe_tests --gtest_filter='CudaFusedTiles.EarlyRows*:CudaFusedTiles.AsyncSignal*' > $OUT/test.txt 2>&1
rc=$?; echo bit tests rc $rc; grep -E "^\[  (PASSED|FAILED)|Failure" $OUT/test.txt | head
[ $rc -eq 0 ] || exit 0
VARIANTS="late $P/fusedmoe FUSEDMOE_CUDA_FUSED_EARLY_ROWS=off; early $P/fusedmoe" TOKENS=1024,4096,16384 ROUNDS=2 timeout 200 scripts/gpu_ab.sh $OUT/ab.txt > /dev/null 2>&1
echo ab rc $?
scripts/ab_summary.py $OUT/ab.txt late
CPU_TESTS=0 PREBUILT=$P timeout 200 scripts/gpu_check.sh $OUT/gc > $OUT/gpu_check.txt 2>&1
echo gpu_check rc $?
grep -A8 "== summary" $OUT/gpu_check.txt
grep -E "^\[  FAILED" $OUT/gc/gpu_check/cuda_tests.log | head
rm -rf $OUT/gc
