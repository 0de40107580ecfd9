#!/usr/bin/env bash
# Session 22 (prepared in session 21), any Hopper card (~6 min): the issue's bench on main with the PyTorch
# peers, the floor measured in the same run (the last H200 bench with peers is session 18's, before the
# pipelined reduce and wg192_n192_ws; the last H100 one is session 15's).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P timeout 570 scripts/gpu_bench.sh $OUT/bench > $OUT/bench.log 2>&1
echo bench rc $?; tail -80 $OUT/bench.log
