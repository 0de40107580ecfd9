#!/usr/bin/env bash
# Session 27, call 5 (any Hopper card, ~4 min). Call 4 found decode 3% slower at qwen3/olmoe M=1 (0.7-1.6% at
# M=8) since 0b80215: the align's per-expert loop (5096626) runs three 64-bit divisions by block_m in a row
# per warp. .prebuilt: main with those divisions in 32 bits (uncommitted), fusedmoe_prev = 5096626,
# fusedmoe_base = 0b80215. (1) The align and decode tests of the new binary; (2) decode A/B, CUDA graphs,
# 20 replays, 3 rounds, base / prev / main at M = 1 / 8 / 64 on the four presets.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
timeout 150 "$P"/fusedmoe_tests --gtest_filter='CudaFusedAlign*:Cases/CudaFused.*/decode*:Cases/CudaFused.*/odd_sizes*:Cases/CudaFused.*/expert_map*:Cases/CudaFused.*/e256*:Cases/CudaFused.*/all_on_one*:Cases/CudaFused.*/zero*' \
  > $OUT/tests.log 2>&1
echo "tests rc $?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \] [A-Za-z]" $OUT/tests.log | head -20
PREBUILT=$P TOKENS=1,8,64 ROUNDS=3 REPEATS=20 \
  VARIANTS="base $P/fusedmoe_base; prev $P/fusedmoe_prev; main $P/fusedmoe" \
  timeout 330 scripts/gpu_ab.sh $OUT/ab-decode.txt >/dev/null
scripts/ab_summary.py $OUT/ab-decode.txt base
