#!/usr/bin/env bash
# Session 30 call 6: 44ef147 with f2b7f4a's warp-specialised kernel file (fusedmoe_44k) against f2b7f4a,
# 44ef147 and main: is the step in the kernel file or around it?
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
ab() { PREBUILT=$P PRESETS="$1" TOKENS=$2 ROUNDS=3 REPEATS=50 \
  VARIANTS="main $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=$3; f2b7f4a $P/fusedmoe_f2b7f4a FUSEDMOE_CUDA_FUSED_TILE=$3; 44ef147 $P/fusedmoe_44ef147 FUSEDMOE_CUDA_FUSED_TILE=$3; 44k $P/fusedmoe_44k FUSEDMOE_CUDA_FUSED_TILE=$3" \
  timeout 200 scripts/gpu_ab.sh $OUT/ab-$1.txt >/dev/null; scripts/ab_summary.py $OUT/ab-$1.txt main; }
ab olmoe-1b-7b 256 wg64_n256_ws
ab qwen3-30b-a3b 1024 wg128_n256_ws
