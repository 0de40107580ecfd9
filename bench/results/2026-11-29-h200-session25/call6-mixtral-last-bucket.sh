#!/usr/bin/env bash
# Session 25, call 6: mixtral-8x7b inside its last H200 bucket (M = 4097-16384, the pair tile; measured at 16384 only).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P PRESETS="mixtral-8x7b" TOKENS=6144,8192,12288 ROUNDS=2 REPEATS=200 \
  VARIANTS="table $P/fusedmoe; ws128 $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws" \
  timeout 500 scripts/gpu_ab.sh $OUT/ab.txt >/dev/null
scripts/ab_summary.py $OUT/ab.txt table
