#!/usr/bin/env bash
# Session 22 (prepared in session 21), H100 only (~6-8 min): re-measure the built-in H100 tune table with
# main's kernels (tune now also times the last M of each tile regime, so wg192_n192_ws gets buckets of its
# own), the A/B of the built-in table against the new one, and the new table in the built-in form
# ($OUT/retune/builtin.json). Paste the cells that win into builtin_tune_tables.cpp.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P ROUNDS=2 timeout 570 scripts/gpu_retune.sh $OUT/retune 2>&1 | tail -60
