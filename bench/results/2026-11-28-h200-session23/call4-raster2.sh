#!/usr/bin/env bash
# Session 23, call 4 (one GPU): the expert raster, second version (the taken tile's coordinates handed to the
# warpgroup and the partner, 32-bit raster arithmetic). gpu_check, then a same-call A/B of three variants:
# main's order (the first version's binary with FUSEDMOE_CUDA_FUSED_RASTER=fixed: main's arithmetic), and the
# second version with expert and with fixed groups.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P CPU_TESTS=0 timeout 240 scripts/gpu_check.sh build/gpu > $OUT/check.log 2>&1
echo "gpu_check rc $?"; grep -E "PASSED|FAILED|ERROR SUMMARY|RACECHECK SUMMARY" $OUT/check.log | head -20
VARIANTS="main $P/fusedmoe_v1 FUSEDMOE_CUDA_FUSED_RASTER=fixed; experts $P/fusedmoe; fixed $P/fusedmoe FUSEDMOE_CUDA_FUSED_RASTER=fixed" \
  ROUNDS=2 REPEATS=20 TOKENS=1024,4096,16384 timeout 340 scripts/gpu_ab.sh $OUT/ab.txt > /dev/null 2>&1
echo "ab rc $?"; python3 scripts/ab_summary.py $OUT/ab.txt main 2>&1 | tail -20
