#!/usr/bin/env bash
# Session 31 call 5: the built-in H200 table against the heuristic alone (FUSEDMOE_TUNE_BUILTIN=off), what
# a shape without a table entry gets, on the bench presets; 2 rounds at 20 replays.
set -u
cd "$(dirname "$0")/../../.."
. scripts/prebuilt_env.sh
PREBUILT=$P ROUNDS=2 TOKENS=1,8,64,128,256,512,1024,2048,4096,16384 \
  VARIANTS="table $P/fusedmoe; heuristic $P/fusedmoe FUSEDMOE_TUNE_BUILTIN=off" \
  timeout 400 scripts/gpu_ab.sh $OUT/ab-heuristic.txt >/dev/null
scripts/ab_summary.py $OUT/ab-heuristic.txt table
