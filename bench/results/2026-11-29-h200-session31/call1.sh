#!/usr/bin/env bash
# Session 31 call 1: gpu_check of de8c7d9 (with_activation helper; SASS identical) + the mid-bucket re-tune.
set -u
cd "$(dirname "$0")/.."
PREBUILT=.prebuilt CPU_TESTS=0 timeout 330 scripts/gpu_check.sh build/gpu > $OUT/gpu_check.log 2>&1; echo "gpu_check rc=$?"
tail -25 $OUT/gpu_check.log
timeout 240 .prebuilt/next-session-mid.sh
