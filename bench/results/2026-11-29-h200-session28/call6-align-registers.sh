#!/usr/bin/env bash
# Session 28 call 6 (~5 min): the one-block align keeps its pairs' local experts in registers and reads the
# offsets back from shared memory (no global load on the scatter's chain; call 4's ncu: the one-block align
# takes 5.9 us at qwen3-30b-a3b M=8). (1) align, warm-up and forward tests, memcheck of the align tests;
# (2) decode A/B against efda083 (fusedmoe_base), 3 rounds, M = 1 / 8 / 64.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
F='CudaFusedAlign*:CudaFusedWarm*:Cases/CudaFused.*:CudaFusedChoices*:Cases/CudaLayer*:CudaConformance*'
timeout 150 "$P"/fusedmoe_tests --gtest_filter="$F" > $OUT/tests.log 2>&1
echo "tests rc $?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \] [A-Za-z]" $OUT/tests.log | head -20
timeout 90 /usr/local/cuda/bin/compute-sanitizer --tool memcheck --error-exitcode 1 "$P"/fusedmoe_tests \
  --gtest_filter='CudaFusedAlign*:Cases/CudaFused.*/decode_m1_*' > $OUT/memcheck.log 2>&1
echo "memcheck rc $?"; grep -E "ERROR SUMMARY|PASSED|FAILED" $OUT/memcheck.log | head -5
PREBUILT=$P PRESETS="qwen3-30b-a3b olmoe-1b-7b mixtral-8x7b deepseek-v3" TOKENS=1,8,64 ROUNDS=3 REPEATS=20 \
  VARIANTS="prev $P/fusedmoe_base; new $P/fusedmoe" \
  timeout 200 scripts/gpu_ab.sh $OUT/ab-decode.txt >/dev/null
scripts/ab_summary.py $OUT/ab-decode.txt prev
