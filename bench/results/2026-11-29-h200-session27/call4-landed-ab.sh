#!/usr/bin/env bash
# Session 27, call 4 (any Hopper card, ~4 min). .prebuilt: main (the scan helper and the pairs' padding skip
# merged, wg192_n192_ws from 121 rows per expert), fusedmoe_prev = 5096626 (session 26's main), fusedmoe_base =
# 0b80215 (before session 26's padding skip and the align's block runs written a warp per expert).
# (1) Landed A/B, main against prev, 200 replays, 3 rounds, at the cells the new wg192 bound moved (121 and
#     124 rows per expert) on the four presets.
# (2) Decode M = 1 / 8 of qwen3 and olmoe (CUDA graphs, 20 replays, 3 rounds), base / prev / main: call 3 had
#     qwen3 M=1 at 0.032 ms against 0.030 in session 26's bench on 0b80215.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
V="prev $P/fusedmoe_prev; main $P/fusedmoe"
for cell in "qwen3-30b-a3b 1936,1984" "olmoe-1b-7b 968,992" "mixtral-8x7b 484,496" "deepseek-v3 3968"; do
  set -- $cell
  PREBUILT=$P PRESETS=$1 TOKENS=$2 ROUNDS=3 REPEATS=200 VARIANTS="$V" \
    timeout 100 scripts/gpu_ab.sh $OUT/ab-landed-$1.txt >/dev/null
  scripts/ab_summary.py $OUT/ab-landed-$1.txt prev
done
PREBUILT=$P PRESETS="qwen3-30b-a3b olmoe-1b-7b" TOKENS=1,8 ROUNDS=3 REPEATS=20 \
  VARIANTS="base $P/fusedmoe_base; prev $P/fusedmoe_prev; main $P/fusedmoe" \
  timeout 100 scripts/gpu_ab.sh $OUT/ab-decode.txt >/dev/null
scripts/ab_summary.py $OUT/ab-decode.txt base
