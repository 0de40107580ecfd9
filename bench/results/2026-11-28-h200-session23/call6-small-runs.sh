#!/usr/bin/env bash
# Session 23, call 6 (one GPU): expert groups where every expert has one row block (olmoe M=256 and 512 on
# wg64_n256_ws, qwen3/olmoe M=1024 on wg128_n256_ws / wg192): same-call A/B against the fixed groups, 3 rounds.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
VARIANTS="experts $P/fusedmoe; fixed $P/fusedmoe FUSEDMOE_CUDA_FUSED_RASTER=fixed" PRESETS="olmoe-1b-7b qwen3-30b-a3b" \
  ROUNDS=3 REPEATS=30 TOKENS=256,512,1024 timeout 300 scripts/gpu_ab.sh $OUT/ab.txt > /dev/null 2>&1
echo "ab rc $?"; python3 scripts/ab_summary.py $OUT/ab.txt fixed 2>&1 | tail -10
