#!/usr/bin/env bash
# Session 27, call 7 (any Hopper card, ~3 min). Call 6's ncu: the align kernel itself is 1.2 us slower at
# qwen3 M=1 on main than on 0b80215 (6.0 against 4.8 us; GEMMs level), and the build flags are not the cause.
# The per-expert loop waits on a global load of the expert's offset and a division in every iteration
# (4 experts per warp at qwen3). fusedmoe_lanes: lane j loads the j-th expert's count and first block up
# front, the loop takes them by shuffle. (1) align and forward tests of it; (2) decode A/B base8090 / main /
# lanes, 3 rounds, M = 1 / 8.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
timeout 100 "$P"/fusedmoe_tests --gtest_filter='CudaFusedAlign*:Cases/CudaFused.*/decode*:Cases/CudaFused.*/odd_sizes*:Cases/CudaFused.*/expert_map*:Cases/CudaFused.*/e256*:Cases/CudaFused.*/all_on_one*:Cases/CudaFused.*/zero*:Cases/CudaFused.*/*pair*' \
  > $OUT/tests.log 2>&1
echo "tests rc $?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \] [A-Za-z]" $OUT/tests.log | head -20
PREBUILT=$P PRESETS="qwen3-30b-a3b olmoe-1b-7b deepseek-v3" TOKENS=1,8 ROUNDS=3 REPEATS=20 \
  VARIANTS="base $P/fusedmoe_base8090; main $P/fusedmoe; lanes $P/fusedmoe_lanes" \
  timeout 150 scripts/gpu_ab.sh $OUT/ab-decode.txt >/dev/null
scripts/ab_summary.py $OUT/ab-decode.txt base
