#!/usr/bin/env bash
# Prepared in session 25 for the next session, one H100 (~9 min): gpu_check on main (no H100 has run the
# expert groups of session 23 nor the multi-wave triggers of sessions 24-25), then scripts/gpu_retune.sh on the
# four presets (tune, the A/B of the built-in H100 table against the tuned one, the new table in the built-in
# form in $OUT/retune/builtin.json). Paste decode cells that win the A/B; prefill cells only after an A/B at
# REPEATS=200 (docs/status.md item 0d; .prebuilt/next-h100-prefill.sh). Then .prebuilt/bench.sh (the
# issue's bench with the PyTorch peers).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P CPU_TESTS=0 timeout 240 scripts/gpu_check.sh build/gpu > $OUT/check.log 2>&1
echo "gpu_check rc $?"; grep -E "PASSED|FAILED|ERROR SUMMARY|RACECHECK SUMMARY" $OUT/check.log | head -20
PREBUILT=$P ROUNDS=2 timeout 330 scripts/gpu_retune.sh $OUT/retune 2>&1 | tail -45
