#!/usr/bin/env bash
# Session 25, call 3: gpu_check on the one-tile wgmma GEMM1's early trigger (landed form), then a same-call
# A/B against main (fusedmoe_base) where the one-tile wgmma tiles run (mixtral/deepseek M=64, 256), 3 rounds.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P CPU_TESTS=0 timeout 200 scripts/gpu_check.sh build/gpu > $OUT/check.log 2>&1
echo "gpu_check rc $?"; grep -E "PASSED|FAILED|ERROR SUMMARY|RACECHECK SUMMARY|OneTileWgmma|MultiWave" $OUT/check.log | head -20
PREBUILT=$P PRESETS="mixtral-8x7b deepseek-v3" TOKENS=64,128,256 ROUNDS=3 \
  VARIANTS="main $P/fusedmoe_base; new $P/fusedmoe" \
  timeout 300 scripts/gpu_ab.sh $OUT/ab.txt >/dev/null
scripts/ab_summary.py $OUT/ab.txt main
