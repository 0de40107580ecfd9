#!/usr/bin/env bash
# Session 25, call 4: deepseek-v3's last H200 bucket (M = 5633-16384, the pair tile) at 200 replays: call 1 had
# wg192_n192_ws 1.3% and wg128_n256_ws 1.0% ahead at M=16384 in both rounds. Where in the bucket does that
# hold? Same-call A/B, 2 rounds.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P PRESETS="deepseek-v3" TOKENS=6144,8192,12288,16384 ROUNDS=2 REPEATS=200 \
  VARIANTS="table $P/fusedmoe; ws128 $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws; wg192 $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg192_n192_ws" \
  timeout 500 scripts/gpu_ab.sh $OUT/ab.txt >/dev/null
scripts/ab_summary.py $OUT/ab.txt table
