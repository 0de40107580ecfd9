#!/usr/bin/env bash
# Session 20's last call: the 16-row tiles tune favoured at qwen3/olmoe M=64 (m16_n128_k128 one-tile 0.992,
# m16_n128_k128/m16 0.989 at qwen3; 0.996 at olmoe) against the H200 table, 5 rounds, M = 8 and 64.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
T=FUSEDMOE_CUDA_FUSED_TILE
V="table $P/fusedmoe; n128 $P/fusedmoe $T=m16_n128_k128; n128_m16 $P/fusedmoe $T=m16_n128_k128/m16; m16 $P/fusedmoe $T=m16"
PRESETS="qwen3-30b-a3b olmoe-1b-7b" VARIANTS="$V" TOKENS=8,64 ROUNDS=5 timeout 280 scripts/gpu_ab.sh $OUT/ab.txt > /dev/null 2>&1
echo ab rc $?
scripts/ab_summary.py $OUT/ab.txt table
