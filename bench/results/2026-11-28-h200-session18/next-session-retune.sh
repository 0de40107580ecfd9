#!/usr/bin/env bash
# On an H100 (the issue's card): re-measure the built-in tune table with main's kernels (~4 min).
set -u
cd "$(dirname "$0")/.."
PREBUILT=.prebuilt timeout 500 scripts/gpu_retune.sh $OUT/retune
