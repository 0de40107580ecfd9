#!/usr/bin/env bash
# Prepared in session 25, one H100 (~9 min): the H100 table's prefill choices at 200 replays per row (the
# sustained, power-capped state; 20 replays measure the transient: bench/results/2026-11-28-h200-session24.md
# section 3). Same-call A/B, 2 rounds: the built-in H100 table against wg128_n256_ws, the pair tile and
# wg192_n192_ws, at M = 1024, 4096, 16384 of all four presets, and deepseek-v3 M = 7168 / 8192 / 12288 (the
# H100 table's pair bucket, M = 5633-16384; on the H200 the pair tile in the align's parity order, landed in
# session 26, was 3% ahead of wg128_n256_ws at 7168 and level past 8192, so the H200 table keeps the pair up
# to 8192: bench/results/2026-11-29-h200-session26.md). Paste a cell into the H100 table only where one tile
# wins both rounds; a bucket measured at one size only needs a second size before it changes.
# (Updated in session 26: the packed binaries are main at 0b80215.)
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P PRESETS="qwen3-30b-a3b olmoe-1b-7b mixtral-8x7b deepseek-v3" TOKENS=1024,4096,16384 ROUNDS=2 REPEATS=200 \
  VARIANTS="table $P/fusedmoe; ws128 $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws; pair $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws_pair; wg192 $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg192_n192_ws" \
  timeout 420 scripts/gpu_ab.sh $OUT/ab.txt >/dev/null
scripts/ab_summary.py $OUT/ab.txt table
PREBUILT=$P PRESETS="deepseek-v3" TOKENS=7168,8192,12288 ROUNDS=2 REPEATS=200 \
  VARIANTS="table $P/fusedmoe; ws128 $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws" \
  timeout 150 scripts/gpu_ab.sh $OUT/ab7168.txt >/dev/null
scripts/ab_summary.py $OUT/ab7168.txt table
