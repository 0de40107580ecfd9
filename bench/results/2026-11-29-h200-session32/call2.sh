#!/usr/bin/env bash
# Session 32: the heuristic's wgmma threshold at 13 / 14 / 15 rows per expert (old = streaming up to 16 rows,
# new = wgmma from 13 rows), FUSEDMOE_TUNE_BUILTIN=off, 3 rounds.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
ab() {  # ab <preset> <tokens>
  PREBUILT=$P PRESETS="$1" TOKENS=$2 ROUNDS=3 \
    VARIANTS="old $P/fusedmoe_base FUSEDMOE_TUNE_BUILTIN=off; new $P/fusedmoe FUSEDMOE_TUNE_BUILTIN=off" \
    timeout 120 scripts/gpu_ab.sh $OUT/rows-$1.txt >/dev/null
  scripts/ab_summary.py $OUT/rows-$1.txt old | tail -n +3
}
ab qwen3-30b-a3b 208,224,240
ab olmoe-1b-7b 104,112,120
ab mixtral-8x7b 52,56,60
ab deepseek-v3 416,448,480
