#!/usr/bin/env bash
# Session 30 call 12 (the budget's last minutes): the H200 table's mid-size buckets (wg64_n128 / m32 from
# 09a9a3e) against wg64_n256_ws on 042ac3e, 2 rounds at 50 replays.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
run() { PREBUILT=$P PRESETS="$1" TOKENS=$2 ROUNDS=2 REPEATS=50 \
  VARIANTS="table $P/fusedmoe; ws $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg64_n256_ws" \
  timeout 60 scripts/gpu_ab.sh $OUT/ab-mid-$1.txt >/dev/null; scripts/ab_summary.py $OUT/ab-mid-$1.txt table; }
run olmoe-1b-7b 160,224,256,320,384
run qwen3-30b-a3b 320,384,448,512
run mixtral-8x7b 128,192
