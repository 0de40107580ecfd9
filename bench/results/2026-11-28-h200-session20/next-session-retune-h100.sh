#!/usr/bin/env bash
# On an H100 (the issue's card; ~5 min): re-measure the built-in tune table with main's kernels and tune's
# two-tile decode candidates (scripts/gpu_retune.sh: tune, summary, A/B against the built-in table, the new
# table in the built-in form).
set -u
cd "$(dirname "$0")/.."
PREBUILT=.prebuilt timeout 560 scripts/gpu_retune.sh $OUT/retune
