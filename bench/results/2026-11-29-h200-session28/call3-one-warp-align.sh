#!/usr/bin/env bash
# Session 28 call 3 (~6 min): the one-warp align (align_one_warp_kernel; auto up to 64 pairs).
# (1) gpu_check (every CUDA test, memcheck, racecheck); (2) decode A/B, 3 rounds, M = 1 / 8 / 16 / 32:
# the one-block align (FUSEDMOE_CUDA_FUSED_ALIGN=single, main's until now), auto, and the one warp forced
# (up to 256 pairs: M=16/32 at k=8 tell whether its bound should move).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P CPU_TESTS=0 timeout 240 scripts/gpu_check.sh build/gpu > $OUT/check.log 2>&1
echo "gpu_check rc $?"; grep -E "PASSED|FAILED|ERROR SUMMARY|RACECHECK SUMMARY" $OUT/check.log | head -20
PREBUILT=$P PRESETS="qwen3-30b-a3b olmoe-1b-7b mixtral-8x7b deepseek-v3" TOKENS=1,8,16,32 ROUNDS=3 REPEATS=20 \
  VARIANTS="block $P/fusedmoe FUSEDMOE_CUDA_FUSED_ALIGN=single; auto $P/fusedmoe; warp $P/fusedmoe FUSEDMOE_CUDA_FUSED_ALIGN=warp" \
  timeout 300 scripts/gpu_ab.sh $OUT/ab-decode.txt >/dev/null
scripts/ab_summary.py $OUT/ab-decode.txt block
