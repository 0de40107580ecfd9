#!/usr/bin/env bash
# Session 24 call 7 (H200), item 0d: call 6 found the spread inside one process (rows of the same cell on the
# same weights differ by up to 12%). With 200 replays per row instead of 20: do the rows agree?
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
for preset in mixtral-8x7b deepseek-v3; do
  for p in 1 2 3 4; do
    timeout 60 "$P"/fusedmoe bench --device cuda:0 --preset $preset --tokens 4096,4096,4096 --repeats 200 \
      --backend cuda_fused 2>&1 | grep -E "^\S+\s+cuda_fused" | awk -v p=$p '{printf "%s p%d %s\n", $1, p, $4}' |
      tr '\n' ' '; echo
  done
done | tee $OUT/spread.txt
