#!/usr/bin/env bash
# Session 23, call 8 (one GPU): raster groups of whole runs by windows of 8 row blocks (experts of one row
# block group by 8 again, long runs stay whole). gpu_check on it, then a same-call A/B against 44ef147's
# one-expert groups (fusedmoe_v2) and main's fixed groups (fusedmoe_v1 with FUSEDMOE_CUDA_FUSED_RASTER=fixed).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P CPU_TESTS=0 timeout 200 scripts/gpu_check.sh build/gpu > $OUT/check.log 2>&1
echo "gpu_check rc $?"; grep -E "PASSED|FAILED|ERROR SUMMARY|RACECHECK SUMMARY" $OUT/check.log | head -20
: > $OUT/ab.txt
for cell in "olmoe-1b-7b 256,1024,4096" "qwen3-30b-a3b 1024,4096,16384" "mixtral-8x7b 1024,4096" "deepseek-v3 4096,16384"; do
  set -- $cell
  VARIANTS="main $P/fusedmoe_v1 FUSEDMOE_CUDA_FUSED_RASTER=fixed; experts $P/fusedmoe_v2; windows $P/fusedmoe" \
    PRESETS=$1 TOKENS=$2 ROUNDS=2 REPEATS=20 timeout 80 scripts/gpu_ab.sh $OUT/ab-$1.txt > /dev/null 2>&1
  cat $OUT/ab-$1.txt >> $OUT/ab.txt
done
python3 scripts/ab_summary.py $OUT/ab.txt main 2>&1 | tail -12
