#!/usr/bin/env bash
# Session 20's first call (prepared in session 19; ~4 minutes, any Hopper card): two-tile choices beyond
# decode. Session 19 landed "<GEMM1 tile>/<GEMM2 tile>" and tune's 16-row pairs (M=1 1.5-3.3% faster on the
# H200). fusedmoe9 = main + tune timing, at every M, every pair of tiles with the same rows and kind (16-row
# tiles, wgmma tiles; 28 pairs)
# (bench/results/2026-11-28-h200-session19/tune-all-pairs-untested.patch, against forward_choice.cpp): does any pair beat the table at
# M = 64 .. 16384? scripts/tune_summary.py prints the table's choice, the best one-tile and the best pair.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
for preset in qwen3-30b-a3b olmoe-1b-7b mixtral-8x7b deepseek-v3; do
  start=$(date +%s)
  timeout 200 $P/fusedmoe9 tune --device cuda:0 --preset $preset --tokens 64,256,1024,4096,16384 --json \
    --output $OUT/tune.json > $OUT/tune-$preset.txt 2>&1
  echo "tune $preset rc $? in $(($(date +%s) - start)) s"
done
python3 scripts/tune_summary.py $OUT/tune-*.txt
