#!/usr/bin/env bash
# Session 28 call 1 (~8 min): gpu_check on .prebuilt (1b46712 = main + the unsigned blocks_for patch and its
# two align cases), then the pair tile against the table at mixtral M=1024, qwen3/olmoe M=4096.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv
PREBUILT=$P CPU_TESTS=0 timeout 240 scripts/gpu_check.sh build/gpu > $OUT/check.log 2>&1
echo "gpu_check rc $?"; grep -E "PASSED|FAILED|ERROR SUMMARY|RACECHECK SUMMARY" $OUT/check.log | head -20
grep -E "partial_chunk|wg192_rows" $OUT/check.log | head
"$P/next-pair-cells.sh"
