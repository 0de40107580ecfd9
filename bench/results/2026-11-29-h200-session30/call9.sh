#!/usr/bin/env bash
# Session 30 call 9: gpu_check on the activation hoisted out of every GEMM1 epilogue's element loop, then an
# A/B against main (ef3d4ec, fusedmoe_base) on the table's choices at decode and mid sizes.
set -u
cd "$(dirname "$0")/.."
PREBUILT=.prebuilt CPU_TESTS=0 timeout 330 scripts/gpu_check.sh build/gpu > $OUT/gpu_check.log 2>&1
echo "gpu_check rc $?"; grep -E "^\[  (PASSED|FAILED)|ERROR SUMMARY|RACECHECK SUMMARY" $OUT/gpu_check.log | tail -8
. scripts/prebuilt_env.sh
PREBUILT=$P TOKENS=1,8,64,256 ROUNDS=3 REPEATS=20 VARIANTS="base $P/fusedmoe_base; hoist $P/fusedmoe" \
  timeout 200 scripts/gpu_ab.sh $OUT/ab-small.txt >/dev/null
scripts/ab_summary.py $OUT/ab-small.txt base
