#!/usr/bin/env bash
# Session 18's seventh call: the second consumer skipping the MMAs of 64 rows of padding
# (FUSEDMOE_CUDA_FUSED_SKIP_IDLE_HALF=on, the patch's default) against multiplying them (=off): bit test, A/B.
set -u
cd "$(dirname "$0")/.."
scripts/unpack_prebuilt.sh .prebuilt >/dev/null
P=.prebuilt
export LD_LIBRARY_PATH=$PWD/$P:/usr/local/cuda/lib64
nvidia-smi --query-gpu=name --format=csv,noheader; cat $P/commit.txt
timeout 90 $P/fusedmoe_tests --gtest_filter='CudaFusedTiles.SkippedIdleHalves*:CudaFusedSwitches.*' > $OUT/test.txt 2>&1
rc=$?; echo bit tests rc $rc; grep -E "^\[  (PASSED|FAILED)|Failure" $OUT/test.txt | head
[ $rc -eq 0 ] || exit 0
VARIANTS="all $P/fusedmoe FUSEDMOE_CUDA_FUSED_SKIP_IDLE_HALF=off; skip $P/fusedmoe" TOKENS=1024,4096,16384 ROUNDS=2 timeout 170 scripts/gpu_ab.sh $OUT/ab.txt > /dev/null 2>&1
echo ab rc $?
scripts/ab_summary.py $OUT/ab.txt all
