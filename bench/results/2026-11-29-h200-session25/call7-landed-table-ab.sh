#!/usr/bin/env bash
# Session 25, call 7: the landed table (deepseek-v3 past 6144 tokens on wg128_n256_ws) and trigger against
# main at the start of the session (fusedmoe_base, ea0c99f), same call, 2 rounds, 200 replays per row.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P PRESETS="deepseek-v3" TOKENS=6144,7168,16384 ROUNDS=2 REPEATS=200 \
  VARIANTS="main $P/fusedmoe_base; new $P/fusedmoe" \
  timeout 400 scripts/gpu_ab.sh $OUT/ab.txt >/dev/null
scripts/ab_summary.py $OUT/ab.txt main
