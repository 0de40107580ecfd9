#!/usr/bin/env bash
# Session 19 call 5: per-kernel times (ncu, the card's own clocks) of the decode cells level with Triton on
# the H100 (olmoe M=8, qwen3 M=64) and their neighbours, to split each forward into kernels and gaps.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
for cell in "olmoe-1b-7b 8" "qwen3-30b-a3b 64" "qwen3-30b-a3b 8" "olmoe-1b-7b 64"; do
  set -- $cell
  echo "== $1 M=$2"
  PREBUILT=$P PRESET=$1 TOKENS=$2 timeout 100 scripts/gpu_profile.sh $OUT/profile 2>&1 | tail -5
done
timeout 120 $P/fusedmoe bench --device cuda:0 --preset olmoe-1b-7b --preset qwen3-30b-a3b --tokens 8,64 --repeats 10 2>&1 | tail -6
