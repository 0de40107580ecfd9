#!/usr/bin/env bash
# Session 29 call 10: is call 9's step the build's architectures? main built for 80;90a (table) against main
# built for 90a only (sm90a), and f2b7f4a (90a only).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh >/dev/null
chmod +x $P/fusedmoe_old $P/fusedmoe_table $P/fusedmoe_sm90a
ab() { PREBUILT=$P PRESETS="$1" TOKENS=$2 ROUNDS=2 REPEATS=50 \
  VARIANTS="main $P/fusedmoe_table FUSEDMOE_CUDA_FUSED_TILE=$3; sm90a $P/fusedmoe_sm90a FUSEDMOE_CUDA_FUSED_TILE=$3; old $P/fusedmoe_old FUSEDMOE_CUDA_FUSED_TILE=$3" \
  timeout 100 scripts/gpu_ab.sh $OUT/ab-$1.txt >/dev/null; scripts/ab_summary.py $OUT/ab-$1.txt main; }
ab olmoe-1b-7b 256 wg64_n256_ws
ab qwen3-30b-a3b 1024 wg128_n256_ws
