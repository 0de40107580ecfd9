#!/usr/bin/env bash
# Session 26 call 3: the landed H200 table (deepseek-v3 pair buckets, c3ce143) against the merge before it
# (a42bb6e, packed as fusedmoe_base), 200 replays, 3 rounds.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P PRESETS="deepseek-v3" TOKENS=6144,7168,8192,10240,12288,16384 ROUNDS=3 REPEATS=200 \
  VARIANTS="base $P/fusedmoe_base; main $P/fusedmoe" timeout 400 scripts/gpu_ab.sh $OUT/ab-landed.txt >/dev/null
scripts/ab_summary.py $OUT/ab-landed.txt base
