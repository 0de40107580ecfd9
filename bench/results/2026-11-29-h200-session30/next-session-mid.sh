#!/usr/bin/env bash
# Prepared in session 30 for the next session (~3 min, any Hopper card; copy into .prebuilt/ beside a packed
# main). The H200 table's mid-size buckets (09a9a3e: m32 / wg64_n128 where wg64_n256_ws lost by 2-10%) were
# tuned while the per-element activation cost the warp-specialised tiles 2-5% (fixed in 042ac3e): the table
# against the forced tiles in those buckets, 3 rounds at 50 replays.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
run() { PREBUILT=$P PRESETS="$1" TOKENS=$2 ROUNDS=3 REPEATS=50 \
  VARIANTS="table $P/fusedmoe; ws $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg64_n256_ws; n128 $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg64_n128; m32 $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=m32" \
  timeout 150 scripts/gpu_ab.sh $OUT/ab-mid-$1.txt >/dev/null; scripts/ab_summary.py $OUT/ab-mid-$1.txt table; }
run olmoe-1b-7b 96,160,224,256,320,384
run qwen3-30b-a3b 320,384,448,512
run mixtral-8x7b 64,128,192
run deepseek-v3 384,512,768
