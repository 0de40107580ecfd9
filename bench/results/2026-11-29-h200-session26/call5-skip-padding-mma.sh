#!/usr/bin/env bash
# Session 26 call 5: branch skip-padding-mma (4f7d079): consumer warpgroups whose rows are all padding skip
# their MMAs. Its cuda_fused tests, then a 200-replay A/B against main (0b80215, fusedmoe_base) at the
# padded compute-bound cells.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
timeout 120 "$P"/fusedmoe_tests --gtest_filter='CudaFused*:*/CudaFused*' > $OUT/tests.log 2>&1
echo "tests rc $?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $OUT/tests.log | head -20
PREBUILT=$P PRESETS="qwen3-30b-a3b olmoe-1b-7b mixtral-8x7b deepseek-v3" TOKENS=1024,4096 ROUNDS=2 REPEATS=200 \
  VARIANTS="base $P/fusedmoe_base; skip $P/fusedmoe" timeout 300 scripts/gpu_ab.sh $OUT/ab-skip.txt >/dev/null
scripts/ab_summary.py $OUT/ab-skip.txt base
