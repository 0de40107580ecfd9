#!/usr/bin/env bash
# Session 27, call 3 (any Hopper card, ~8 min). Call 2 found wg192_n192_ws ahead of the table at 124 rows per
# expert on qwen3 / olmoe / mixtral (0.978 / 0.969 / 0.919, both rounds), behind at 112 (1.03-1.10), level at
# 192, behind at 208 and 256, and mixtral ahead at 512 rows (M=2048, 0.973). Here, 200 replays, 2 rounds:
# (1) the lower bound: 118 and 121 rows per expert on the three presets; (2) mixtral's 4-plus-block regime,
# 448 / 576 / 768 / 1024 rows; (3) deepseek-v3 (E 256, k 8) at 118 / 124 / 192 / 256 / 512 rows; (4) main's
# decode rows (20 replays, CUDA graphs) for a look against session 26's bench on 0b80215.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
V="table $P/fusedmoe; wg192 $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg192_n192_ws"
for cell in "qwen3-30b-a3b 1888,1936" "olmoe-1b-7b 944,968" "mixtral-8x7b 472,484,1792,2304,3072,4096"; do
  set -- $cell
  PREBUILT=$P PRESETS=$1 TOKENS=$2 ROUNDS=2 REPEATS=200 VARIANTS="$V" \
    timeout 120 scripts/gpu_ab.sh $OUT/ab-$1.txt >/dev/null
  scripts/ab_summary.py $OUT/ab-$1.txt table
done
V3="ws128 $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws; $V"
PREBUILT=$P PRESETS=deepseek-v3 TOKENS=3776,3968,6144,8192,16384 ROUNDS=2 REPEATS=200 VARIANTS="$V3" \
  timeout 300 scripts/gpu_ab.sh $OUT/ab-deepseek-v3.txt >/dev/null
scripts/ab_summary.py $OUT/ab-deepseek-v3.txt table
PREBUILT=$P TOKENS=1,8,64,256 ROUNDS=2 REPEATS=20 VARIANTS="main $P/fusedmoe" \
  timeout 60 scripts/gpu_ab.sh $OUT/ab-decode.txt >/dev/null
scripts/ab_summary.py $OUT/ab-decode.txt main
