#!/usr/bin/env bash
# Prepared in session 31 for the next session (~9 min, any Hopper card; copy into .prebuilt/ beside a pack of
# 36c46f2 or later with BASELINE = de8c7d9's CLI as fusedmoe_base). 36c46f2 changed only host code (the
# heuristic's regime ends, two H200 table buckets); its kernels are session 30's. This call:
# (1) gpu_check on the new build; (2) the heuristic alone (FUSEDMOE_TUNE_BUILTIN=off), new against old, at
# 13 / 16 / 24 / 32 / 48 / 56 / 64 / 96 rows per expert; (3) the table, new against old, at the new buckets.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P CPU_TESTS=0 timeout 330 scripts/gpu_check.sh build/gpu > $OUT/gpu_check.log 2>&1; echo "gpu_check rc=$?"
tail -22 $OUT/gpu_check.log
ab() {  # ab <file> <preset> <tokens> <env>
  PREBUILT=$P PRESETS="$2" TOKENS=$3 ROUNDS=2 \
    VARIANTS="old $P/fusedmoe_base $4; new $P/fusedmoe $4" timeout 120 scripts/gpu_ab.sh $OUT/$1-$2.txt >/dev/null
  scripts/ab_summary.py $OUT/$1-$2.txt old | tail -n +3
}
echo "heuristic (FUSEDMOE_TUNE_BUILTIN=off): old new"
ab heuristic qwen3-30b-a3b 208,256,384,512,768,896,1024,1536 FUSEDMOE_TUNE_BUILTIN=off
ab heuristic olmoe-1b-7b 104,128,192,256,384,448,512,768 FUSEDMOE_TUNE_BUILTIN=off
ab heuristic mixtral-8x7b 52,64,96,128,192,224,256,384 FUSEDMOE_TUNE_BUILTIN=off
ab heuristic deepseek-v3 416,512,768,1024,1536,1792,2048,3072 FUSEDMOE_TUNE_BUILTIN=off
echo "table: old new"
ab table qwen3-30b-a3b 640,768,896 ""
ab table deepseek-v3 1280,1536 ""
