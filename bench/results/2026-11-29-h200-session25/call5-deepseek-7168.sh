#!/usr/bin/env bash
# Session 25, call 5: deepseek-v3 between M=6144 (the pair tile ahead) and 8192 (wg128_n256_ws ahead, call 4).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P PRESETS="deepseek-v3" TOKENS=7168,8192 ROUNDS=2 REPEATS=200 \
  VARIANTS="table $P/fusedmoe; ws128 $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws" \
  timeout 500 scripts/gpu_ab.sh $OUT/ab.txt >/dev/null
scripts/ab_summary.py $OUT/ab.txt table
