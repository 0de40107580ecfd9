#!/usr/bin/env bash
# Prepared in session 27, any Hopper card (~4 min; step (3) of session 26's next-session-pairs.sh, not run):
# with the parity order (26) and the pair tiles' padding skip (27, 798b5ae) on main, does the pair tile take
# cells the tables give wg128_n256_ws? Rows per expert 256 +- 15 (mixtral M=1024, qwen3 M=4096) and 512
# (olmoe M=4096), 200 replays, 2 rounds, the table against the forced pair. Put the pair in the table's
# bucket only where it wins both rounds.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P PRESETS="mixtral-8x7b qwen3-30b-a3b olmoe-1b-7b" TOKENS=1024,4096 ROUNDS=2 REPEATS=200 \
  VARIANTS="table $P/fusedmoe; pair $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws_pair" \
  timeout 200 scripts/gpu_ab.sh $OUT/ab-pair-cells.txt >/dev/null
scripts/ab_summary.py $OUT/ab-pair-cells.txt table
