#!/usr/bin/env bash
# Session 24 call 5 (H200): the issue's bench at the decode sizes (M = 1, 8, 64, 256) with the PyTorch peers
# and the floor in the same run, on 0102275 (the multi-wave GEMM1 trigger). Prefill is session 23's.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P TOKENS=1,8,64,256 timeout 400 scripts/gpu_bench.sh $OUT/bench > $OUT/bench.log 2>&1
echo bench rc $?; tail -60 $OUT/bench.log
