#!/usr/bin/env bash
# Session 31 call 2: the whole H200 table re-measured after 042ac3e (fusedmoe tune at the bench sizes + the
# regime ends, then the built-in table against the tuned one, 2 rounds).
set -u
cd "$(dirname "$0")/.."
PREBUILT=.prebuilt ROUNDS=2 timeout 540 scripts/gpu_retune.sh $OUT/retune 2>&1 | tail -80
