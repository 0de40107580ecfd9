#!/usr/bin/env bash
# Prepared in session 24 for the next session, one H200 (~9 min): gpu_check on main, then the prefill tiles
# of the four presets at M = 1024, 4096, 16384 in a same-call A/B at 200 replays per row (20 replays measure
# the power cap's transient: bench/results/2026-11-28-h200-session24.md section 3): the built-in table
# against wg128_n256_ws, the pair tile (7.6 GB of L2 traffic per TFLOP where a pair shares an expert, against
# 11.4 for wg128_n256_ws) and wg192_n192_ws, two rounds. Paste a cell into the H200 table only where one tile
# wins both rounds.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P CPU_TESTS=0 timeout 160 scripts/gpu_check.sh build/gpu > $OUT/check.log 2>&1
echo "gpu_check rc $?"; grep -E "PASSED|FAILED|ERROR SUMMARY|RACECHECK SUMMARY" $OUT/check.log | head -20
PREBUILT=$P PRESETS="qwen3-30b-a3b olmoe-1b-7b mixtral-8x7b deepseek-v3" TOKENS=1024,4096,16384 ROUNDS=2 REPEATS=200 \
  VARIANTS="table $P/fusedmoe; ws128 $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws; pair $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws_pair; wg192 $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg192_n192_ws" \
  timeout 420 scripts/gpu_ab.sh $OUT/ab.txt >/dev/null
scripts/ab_summary.py $OUT/ab.txt table
