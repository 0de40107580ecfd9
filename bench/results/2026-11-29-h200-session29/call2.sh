#!/usr/bin/env bash
# Session 29 call 2: gpu_check on main + the 512-thread one-block align, then a decode A/B against 20fb611.
set -u
cd "$(dirname "$0")/.."
PREBUILT=.prebuilt CPU_TESTS=0 timeout 300 scripts/gpu_check.sh build/gpu > $OUT/gpu_check.log 2>&1
echo "gpu_check rc $?"; grep -E "^\[  (PASSED|FAILED)|ERROR SUMMARY|RACECHECK SUMMARY" $OUT/gpu_check.log | tail -8
. scripts/prebuilt_env.sh
PREBUILT=$P PRESETS="qwen3-30b-a3b olmoe-1b-7b deepseek-v3 mixtral-8x7b" TOKENS=1,8,64 ROUNDS=3 REPEATS=20 \
  VARIANTS="base $P/fusedmoe_base; t512 $P/fusedmoe" timeout 240 scripts/gpu_ab.sh $OUT/ab-t512.txt >/dev/null
scripts/ab_summary.py $OUT/ab-t512.txt base
