#!/usr/bin/env bash
# Prepared in session 26 for the next session, any Hopper card (~8 min). Main's binaries at 1b8e817 (the
# padding consumers skip their MMAs; the align writes its block runs one warp per expert in either order),
# fusedmoe_base = 0b80215 (before both).
# (1) Decode and mid sizes against the base, 20 replays (CUDA graphs), 3 rounds: the align's new block-run
#     writing has not been timed at M <= 256 (expected level or faster: no binary search per block).
# (2) The wg192_n192_ws regime with the padding MMAs skipped, 200 replays, 2 rounds: its bounds (128-176 rows
#     per expert) were tuned when padding rows were multiplied. Below (112 / 124 rows) and above (192 / 208
#     rows) them, per preset: the table, wg128_n256_ws, wg192_n192_ws.
#     Widen a bucket only where wg192 wins both rounds at two sizes; then the heuristic's bounds (tile_table).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P TOKENS=1,8,64,256 ROUNDS=3 REPEATS=20 VARIANTS="base $P/fusedmoe_base; main $P/fusedmoe" \
  timeout 170 scripts/gpu_ab.sh $OUT/ab-decode.txt >/dev/null
scripts/ab_summary.py $OUT/ab-decode.txt base
V="table $P/fusedmoe; ws128 $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws; wg192 $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg192_n192_ws"
for cell in "deepseek-v3 3584,3968,6144,6656" "qwen3-30b-a3b 1792,1984,3072,3328" "olmoe-1b-7b 896,992,1536,1664" \
            "mixtral-8x7b 448,496,768,832"; do
  set -- $cell
  limit=80; [ "$1" = deepseek-v3 ] && limit=150
  PREBUILT=$P PRESETS=$1 TOKENS=$2 ROUNDS=2 REPEATS=200 VARIANTS="$V" \
    timeout $limit scripts/gpu_ab.sh $OUT/ab-$1.txt >/dev/null
  scripts/ab_summary.py $OUT/ab-$1.txt table
done
