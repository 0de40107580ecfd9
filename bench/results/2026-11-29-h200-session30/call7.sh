#!/usr/bin/env bash
# Session 30 call 7: bisect inside 44ef147's kernel file: 44k (f2b7f4a's file), 44a (+ the Raster parameter,
# unused), 44b (+ packed coordinates from the taking thread), 44ef147 (+ the expert raster), and 44ef147 fixed.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
ab() { PREBUILT=$P PRESETS="$1" TOKENS=$2 ROUNDS=3 REPEATS=50 \
  VARIANTS="44k $P/fusedmoe_44k FUSEDMOE_CUDA_FUSED_TILE=$3; 44a $P/fusedmoe_44a FUSEDMOE_CUDA_FUSED_TILE=$3; 44b $P/fusedmoe_44b FUSEDMOE_CUDA_FUSED_TILE=$3; 44ef147 $P/fusedmoe_44ef147 FUSEDMOE_CUDA_FUSED_TILE=$3; 44fixed $P/fusedmoe_44ef147 FUSEDMOE_CUDA_FUSED_TILE=$3 FUSEDMOE_CUDA_FUSED_RASTER=fixed" \
  timeout 250 scripts/gpu_ab.sh $OUT/ab-$1.txt >/dev/null; scripts/ab_summary.py $OUT/ab-$1.txt 44k; }
ab olmoe-1b-7b 256 wg64_n256_ws
ab qwen3-30b-a3b 1024 wg128_n256_ws
