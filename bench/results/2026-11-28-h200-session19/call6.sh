#!/usr/bin/env bash
# Session 19 call 6: GEMM1 and GEMM2 on two 16-row tiles at decode ("<GEMM1 tile>/<GEMM2 tile>", timed by
# `fusedmoe tune` beside every one-tile choice). fusedmoe8 / fusedmoe_tests8 = main + the two-tile choice.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
timeout 200 $P/fusedmoe_tests8 --gtest_filter='CudaFusedChoices.*:CudaFusedTiles.Handover*:CudaFusedTiles.WarpSpecializedBlocksTakeManyTiles:Cases/CudaFused.*split*:CudaFusedTiles.ResultsDoNotDependOnBatchSizeOrTile' > $OUT/test.txt 2>&1
rc=$?; echo tests rc $rc; grep -E "^\[  (PASSED|FAILED)|Failure|tests? from .* ran" $OUT/test.txt | head -20
[ $rc -eq 0 ] || { tail -30 $OUT/test.txt; exit 0; }
for round in 1 2; do
  for preset in olmoe-1b-7b qwen3-30b-a3b mixtral-8x7b deepseek-v3; do
    timeout 100 $P/fusedmoe8 tune --device cuda:0 --preset $preset --tokens 1,8,64 --json --output $OUT/tune-$preset-$round.json > $OUT/tune-$preset-$round.txt 2>&1
    echo "tune $preset round $round rc $?"
  done
  echo "== round $round"
  python3 $P/split_summary.py $OUT/tune-*-$round.txt
done
