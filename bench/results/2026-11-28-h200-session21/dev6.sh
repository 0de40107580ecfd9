#!/usr/bin/env bash
# Session 21: wg192_n192_ws at 128-192 rows per expert on qwen3 (M/16 rows) and mixtral (M/4), where the H200
# table has no bucket for it yet, and past the 176-row bound (olmoe M=1500, deepseek M=6000: 187 rows).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
V="ws128 $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws; ws192 $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg192_n192_ws; table $P/fusedmoe"
VARIANTS="$V" PRESETS="qwen3-30b-a3b" TOKENS=2032,2048,2400,2816,3072 ROUNDS=3 timeout 100 scripts/gpu_ab.sh $OUT/ab-qwen3.txt > /dev/null 2>&1
scripts/ab_summary.py $OUT/ab-qwen3.txt ws128
VARIANTS="$V" PRESETS="mixtral-8x7b" TOKENS=508,512,600,704,768 ROUNDS=3 timeout 100 scripts/gpu_ab.sh $OUT/ab-mixtral.txt > /dev/null 2>&1
scripts/ab_summary.py $OUT/ab-mixtral.txt ws128
VARIANTS="$V" PRESETS="olmoe-1b-7b" TOKENS=1500,1536 ROUNDS=3 timeout 60 scripts/gpu_ab.sh $OUT/ab-olmoe.txt > /dev/null 2>&1
scripts/ab_summary.py $OUT/ab-olmoe.txt ws128
VARIANTS="$V" PRESETS="deepseek-v3" TOKENS=6000 ROUNDS=2 timeout 80 scripts/gpu_ab.sh $OUT/ab-deepseek.txt > /dev/null 2>&1
scripts/ab_summary.py $OUT/ab-deepseek.txt ws128
