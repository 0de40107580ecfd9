#!/usr/bin/env bash
# The issue's bench on main with the PyTorch peers and the floor measured in the same run (~6 min, any
# Hopper card). TIMEOUT (default 570 s) bounds it within one device call.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P timeout "${TIMEOUT:-570}" scripts/gpu_bench.sh $OUT/bench > $OUT/bench.log 2>&1
echo bench rc $?; tail -80 $OUT/bench.log
