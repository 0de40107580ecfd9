#!/usr/bin/env bash
# Session 24 call 6 (H200), item 0d: is the spread of mixtral-8x7b / deepseek-v3 M=4096 between processes a
# property of the process (its weights' placement: weights are allocated once per process) or of the time?
# Each process times the same cell four times in a row (same weights, fresh inputs and workspace per row).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
for preset in mixtral-8x7b deepseek-v3; do
  for p in 1 2 3 4 5; do
    timeout 60 "$P"/fusedmoe bench --device cuda:0 --preset $preset --tokens 4096,4096,4096,4096 --repeats 20 \
      --backend cuda_fused 2>&1 | grep -E "^\S+\s+cuda_fused" | awk -v p=$p '{printf "%s p%d %s\n", $1, p, $4}' |
      tr '\n' ' '; echo
  done
done | tee $OUT/spread.txt
