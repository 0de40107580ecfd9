#!/usr/bin/env bash
# Session 24 call 2 (H200): (1) the pair tile at mixtral-8x7b M = 2048 / 3072 / 4096 against the table's
# wg128_n256_ws, 4 rounds (call 1's retune had it 7.3% faster at 4096 in 2 rounds); (2) deepseek-v3 M=4096,
# the table's wg192_n192_ws against wg128_n256_ws, 3 rounds (call 1: tune 0.958, A/B 1.055: the spread cell);
# (3) a retune of qwen3-30b-a3b and olmoe-1b-7b prefill (M = 1024, 4096, 16384) under the expert groups.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P PRESETS=mixtral-8x7b TOKENS=2048,3072,4096 ROUNDS=4 \
  VARIANTS="table $P/fusedmoe; pair $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws_pair" \
  timeout 150 scripts/gpu_ab.sh $OUT/ab-mixtral.txt >/dev/null
scripts/ab_summary.py $OUT/ab-mixtral.txt table
PREBUILT=$P PRESETS=deepseek-v3 TOKENS=4096 ROUNDS=3 \
  VARIANTS="table $P/fusedmoe; ws128 $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws" \
  timeout 150 scripts/gpu_ab.sh $OUT/ab-deepseek.txt >/dev/null
scripts/ab_summary.py $OUT/ab-deepseek.txt table
PREBUILT=$P PRESETS="qwen3-30b-a3b olmoe-1b-7b" TOKENS=1024,4096,16384 ROUNDS=2 timeout 260 \
  scripts/gpu_retune.sh $OUT/retune 2>&1 | tail -30
