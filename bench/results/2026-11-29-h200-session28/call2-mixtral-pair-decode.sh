#!/usr/bin/env bash
# Session 28 call 2 (~7 min): (1) mixtral-8x7b's regime for the pair tile (call 1: 3.0% ahead of the
# table's wg128_n256_ws at M=1024, 0.7% at 4096): M = 640 .. 3072, 200 replays, 2 rounds; (2) the decode
# residual: ncu per kernel and the align's warp stalls, main against 0b80215 (next-decode.sh).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P PRESETS="mixtral-8x7b" TOKENS=640,768,896,1280,1536,2048,3072 ROUNDS=2 REPEATS=200 \
  VARIANTS="table $P/fusedmoe; pair $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws_pair" \
  timeout 250 scripts/gpu_ab.sh $OUT/ab-mixtral-pair.txt >/dev/null
scripts/ab_summary.py $OUT/ab-mixtral-pair.txt table
timeout 320 "$P/next-decode.sh"
