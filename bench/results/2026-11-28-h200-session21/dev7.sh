#!/usr/bin/env bash
# Session 21: the warp-specialised epilogues staged by stmatrix (4 matrices per instruction instead of one
# 32-bit store per value pair), untested: the tiles' bit tests, then an A/B against main (fusedmoe_base).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
timeout 100 $P/fusedmoe_tests --gtest_filter='Cases/CudaFused.*ws*:Cases/CudaFused.*pair*:Cases/CudaFused.*split*:CudaFusedTiles*:CudaFusedSwitches*:CudaFusedChoices*' > $OUT/tests.txt 2>&1
rc=$?; echo tests rc $rc; grep -E "^\[  (PASSED|FAILED)" $OUT/tests.txt | head -3; grep -E "^\[  FAILED" $OUT/tests.txt | head -8
[ $rc -eq 0 ] || exit 0
VARIANTS="main $P/fusedmoe_base; stmatrix $P/fusedmoe" PRESETS="qwen3-30b-a3b olmoe-1b-7b" TOKENS=1024,4096,16384 ROUNDS=2 timeout 90 scripts/gpu_ab.sh $OUT/ab.txt > /dev/null 2>&1
scripts/ab_summary.py $OUT/ab.txt main
