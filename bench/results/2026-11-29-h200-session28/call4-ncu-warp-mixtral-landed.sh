#!/usr/bin/env bash
# Session 28 call 4 (~4 min). (1) Why the one-warp align (call 3) made qwen3-30b-a3b M=8 11% slower: ncu per
# kernel, FUSEDMOE_CUDA_FUSED_ALIGN=single against =warp. (2) The landed A/B of the H200 table's mixtral pair
# bucket (705-16384; wg128_n256_ws was 705-4096): the table against the old choice forced, 200 replays, 3 rounds.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
for mode in single warp; do
  echo "== qwen3-30b-a3b M=8, align $mode"
  FUSEDMOE_CUDA_FUSED_ALIGN=$mode PREBUILT=$P PRESET=qwen3-30b-a3b TOKENS=8 timeout 60 scripts/gpu_profile.sh $OUT/ncu-$mode 2>&1 | tail -5
done
PREBUILT=$P PRESETS="mixtral-8x7b" TOKENS=768,1024,1536,2048,3072,4096 ROUNDS=3 REPEATS=200 \
  VARIANTS="old $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws; table $P/fusedmoe" \
  timeout 250 scripts/gpu_ab.sh $OUT/ab-mixtral-landed.txt >/dev/null
scripts/ab_summary.py $OUT/ab-mixtral-landed.txt old
