#!/usr/bin/env bash
# Session 28 call 9 (~2.5 min): the one-block align's per-warp loop visits only experts with rows (call 8's
# clock64 probe: that loop was 3.3k of 7.5k cycles at qwen3 M=1). (1) align + decode forward tests;
# (2) decode A/B against efda083, 3 rounds, M = 1 / 8.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
timeout 60 "$P"/fusedmoe_tests --gtest_filter='CudaFusedAlign*:CudaFusedWarm*:Cases/CudaFused.*/decode*:Cases/CudaFused.*/odd_sizes*:Cases/CudaFused.*/expert_map*:Cases/CudaFused.*/e256*:Cases/CudaFused.*/all_on_one*:Cases/CudaFused.*/zero*' > $OUT/tests.log 2>&1
echo "tests rc $?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \] [A-Za-z]" $OUT/tests.log | head -10
PREBUILT=$P PRESETS="qwen3-30b-a3b olmoe-1b-7b deepseek-v3 mixtral-8x7b" TOKENS=1,8 ROUNDS=3 REPEATS=20 \
  VARIANTS="prev $P/fusedmoe_base; new $P/fusedmoe" \
  timeout 150 scripts/gpu_ab.sh $OUT/ab-decode.txt >/dev/null
scripts/ab_summary.py $OUT/ab-decode.txt prev
