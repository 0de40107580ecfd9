#!/usr/bin/env bash
# Session 27, call 2 (any Hopper card, ~9 min): the wg192_n192_ws regime now that warpgroups of padding rows
# skip their MMAs (4f7d079). Its bounds (128-176 rows per expert) were tuned when padding rows still cost
# MMAs. A row block loads its expert's whole weight slice, so the tile with fewer row blocks per expert
# loads fewer bytes: with uniform routing at 256 +- 16 rows per expert wg128 runs 2-3 blocks, wg192 2; at
# 512 +- 22, 4-5 against 3. Per preset, 200 replays, 2 rounds: the table, wg128_n256_ws, wg192_n192_ws at
# 112 / 124 / 192 / 208 / 256 / 512 rows per expert (qwen3/olmoe/mixtral here; deepseek-v3 in call 3).
# Widen the wg192 buckets only where wg192 wins both rounds at two sizes.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
V="table $P/fusedmoe; ws128 $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws; wg192 $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg192_n192_ws"
for cell in "qwen3-30b-a3b 1792,1984,3072,3328,4096,8192" "olmoe-1b-7b 896,992,1536,1664,2048,4096" \
            "mixtral-8x7b 448,496,768,832,1024,2048"; do
  set -- $cell
  PREBUILT=$P PRESETS=$1 TOKENS=$2 ROUNDS=2 REPEATS=200 VARIANTS="$V" \
    timeout 170 scripts/gpu_ab.sh $OUT/ab-$1.txt >/dev/null
  scripts/ab_summary.py $OUT/ab-$1.txt table
done
