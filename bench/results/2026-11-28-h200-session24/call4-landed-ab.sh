#!/usr/bin/env bash
# Session 24 call 4 (H200): the landed form of call 3's finding (a multi-wave mma.sync GEMM1 lets GEMM2
# launch early where GEMM2's grid fills every SM slot): gpu_check on it, then a same-call A/B against main
# (fusedmoe_base, 4ba7104) at the decode sizes, 3 rounds.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P CPU_TESTS=0 timeout 240 scripts/gpu_check.sh build/gpu > $OUT/check.log 2>&1
echo "gpu_check rc $?"; grep -E "PASSED|FAILED|ERROR SUMMARY|RACECHECK SUMMARY" $OUT/check.log | head -20
grep -E "MultiWave" $OUT/check.log | head -5
PREBUILT=$P PRESETS="qwen3-30b-a3b olmoe-1b-7b mixtral-8x7b deepseek-v3" TOKENS=1,8,64,256 ROUNDS=3 \
  VARIANTS="main $P/fusedmoe_base; new $P/fusedmoe" timeout 300 scripts/gpu_ab.sh $OUT/ab.txt >/dev/null
scripts/ab_summary.py $OUT/ab.txt main
grep -c passed $OUT/ab.txt
