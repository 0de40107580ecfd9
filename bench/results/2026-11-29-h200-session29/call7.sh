#!/usr/bin/env bash
# Session 29 call 7: the H200 table against mid-size buckets from call 6's tune (.prebuilt/mid.json).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh >/dev/null
run() { PREBUILT=$P PRESETS="$1" TOKENS=$2 ROUNDS=3 REPEATS=50 \
  VARIANTS="table $P/fusedmoe; mid $P/fusedmoe FUSEDMOE_TUNE_FILE=$PWD/.prebuilt/mid.json" \
  timeout 170 scripts/gpu_ab.sh $OUT/ab-mid-$1.txt >/dev/null; scripts/ab_summary.py $OUT/ab-mid-$1.txt table; }
run olmoe-1b-7b 64,65,96,160,224,225,256,320,384,385,448
run qwen3-30b-a3b 256,257,320,384,385,448,512,513,640
run mixtral-8x7b 8,9,16,32,48,49,128,192,193,256
