#!/usr/bin/env bash
# Session 29 call 9: olmoe M=256 went 0.218 -> 0.228 ms and qwen3 M=1024 0.354 -> 0.361 between session 22's
# bench (f2b7f4a) and session 23. old = f2b7f4a (sm_90a only), revert = main without 9d09aba, table = main.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh >/dev/null
chmod +x $P/fusedmoe_old $P/fusedmoe_revert $P/fusedmoe_table
ab() { PREBUILT=$P PRESETS="$1" TOKENS=$2 ROUNDS=2 REPEATS=50 \
  VARIANTS="main $P/fusedmoe_table FUSEDMOE_CUDA_FUSED_TILE=$3; old $P/fusedmoe_old FUSEDMOE_CUDA_FUSED_TILE=$3; revert $P/fusedmoe_revert FUSEDMOE_CUDA_FUSED_TILE=$3" \
  timeout 100 scripts/gpu_ab.sh $OUT/ab-$1.txt >/dev/null; scripts/ab_summary.py $OUT/ab-$1.txt main; }
ab olmoe-1b-7b 256 wg64_n256_ws
ab qwen3-30b-a3b 1024 wg128_n256_ws
