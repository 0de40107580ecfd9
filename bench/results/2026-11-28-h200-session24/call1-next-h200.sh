#!/usr/bin/env bash
# Prepared in session 23 for the next session, one H200 (~7 min): gpu_check on main (its new
# FUSEDMOE_CUDA_FUSED_RASTER_ROWS case of ExpertRasterKeepsTheBits has not run on a GPU), then a retune of the
# prefill cells under the expert groups (the H200 table was measured with the fixed groups): `fusedmoe tune`
# for mixtral-8x7b and deepseek-v3 at M = 1024, 4096, 16384, the A/B of the built-in table against it, and the
# new table in the built-in form ($OUT/retune/builtin.json). Paste only cells that win the A/B in every round.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P CPU_TESTS=0 timeout 220 scripts/gpu_check.sh build/gpu > $OUT/check.log 2>&1
echo "gpu_check rc $?"; grep -E "PASSED|FAILED|ERROR SUMMARY|RACECHECK SUMMARY" $OUT/check.log | head -20
PREBUILT=$P PRESETS="mixtral-8x7b deepseek-v3" TOKENS=1024,4096,16384 ROUNDS=2 timeout 330 \
  scripts/gpu_retune.sh $OUT/retune 2>&1 | tail -30
