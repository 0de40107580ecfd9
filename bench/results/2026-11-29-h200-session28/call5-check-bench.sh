#!/usr/bin/env bash
# Session 28 call 5 (~9 min): gpu_check on main (efda083), then the issue's bench with the PyTorch peers.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P CPU_TESTS=0 timeout 200 scripts/gpu_check.sh build/gpu > $OUT/check.log 2>&1
echo "gpu_check rc $?"; grep -E "PASSED|FAILED|ERROR SUMMARY|RACECHECK SUMMARY" $OUT/check.log | head -20
TIMEOUT=400 "$P/bench.sh"
