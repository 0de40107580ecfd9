#!/usr/bin/env bash
# Session 19's second call (prepared in session 18; ~4 minutes): the second consumer skipping 64 rows of
# padding, v2 (bench/results/2026-11-28-h200-session18/skip-idle-half-v2-untested.patch; binaries fusedmoe6 /
# fusedmoe_tests6): the producer reads the block's row 64 beside its expert (v1 read it after, an extra round
# trip per tile for GEMM2), and FUSEDMOE_CUDA_FUSED_SKIP_IDLE_HALF=gemm1 skips in GEMM1 only. v1 was 1-1.6%
# faster at qwen3/olmoe and 1.5% slower at mixtral M=1024 (session 18 section 7).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
timeout 120 $P/fusedmoe_tests6 --gtest_filter='CudaFusedTiles.SkippedIdleHalves*:CudaFusedSwitches.*' > $OUT/test.txt 2>&1
rc=$?; echo skip tests rc $rc; grep -E "^\[  (PASSED|FAILED)|Failure" $OUT/test.txt | head
[ $rc -eq 0 ] || exit 0
V="main $P/fusedmoe; off $P/fusedmoe6 FUSEDMOE_CUDA_FUSED_SKIP_IDLE_HALF=off; on $P/fusedmoe6; gemm1 $P/fusedmoe6 FUSEDMOE_CUDA_FUSED_SKIP_IDLE_HALF=gemm1"
VARIANTS="$V" TOKENS=1024,4096,16384 ROUNDS=2 timeout 300 scripts/gpu_ab.sh $OUT/ab.txt > /dev/null 2>&1
echo ab rc $?
scripts/ab_summary.py $OUT/ab.txt main
