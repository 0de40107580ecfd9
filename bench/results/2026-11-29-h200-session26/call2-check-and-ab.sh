#!/usr/bin/env bash
# Session 26 call 2: gpu_check on main with the parity order merged, then 200-replay A/B of the pair tile
# (now parity-ordered) against the table and wg128_n256_ws at the prefill cells around the pair buckets.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P CPU_TESTS=0 timeout 250 scripts/gpu_check.sh build/gpu > $OUT/check.log 2>&1
echo "gpu_check rc $?"; grep -E "PASSED|FAILED|ERROR SUMMARY|RACECHECK SUMMARY" $OUT/check.log | head -20
V="table $P/fusedmoe; ws128 $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws; pair $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws_pair"
for cell in "deepseek-v3 4096,5632,10240,12288,16384" "mixtral-8x7b 4096,6144,8192,16384" "qwen3-30b-a3b olmoe-1b-7b 8192,16384"; do
  tokens=${cell##* }; presets=${cell% *}
  PREBUILT=$P PRESETS="$presets" TOKENS=$tokens ROUNDS=2 REPEATS=200 VARIANTS="$V" \
    timeout 300 scripts/gpu_ab.sh $OUT/ab-${presets%% *}.txt >/dev/null
  scripts/ab_summary.py $OUT/ab-${presets%% *}.txt table
done
