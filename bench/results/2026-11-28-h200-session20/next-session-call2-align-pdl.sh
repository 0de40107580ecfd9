#!/usr/bin/env bash
# Session 21's second call (prepared in session 20; ~5 minutes, any Hopper card): the align's scatter launched
# dependently on the count + scan (align-scatter-pdl-untested.patch; binaries fusedmoe13 / fusedmoe_tests13).
# The count kernel lets the scatter launch at once and the scatter waits for it, so the scatter's launch
# latency hides behind the count and scan (the multi-block align: M*k > 4096 pairs; ncu has count+scan at
# 8-9 us and the scatter at 4-9 us, back to back on the critical path before GEMM1). (1) every CUDA test,
# bounded, (2) an A/B against main at M = 1024 .. 16384, 3 rounds. Land it if the tests pass and it is level
# or faster everywhere (expected: ~1-3 us, 0.5-1% at M=1024).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
FUSEDMOE_SLOW_TESTS=1 timeout 200 $P/fusedmoe_tests13 --gtest_filter='Cuda*:*/Cuda*' > $OUT/tests.txt 2>&1
rc=$?; echo tests rc $rc; grep -E "^\[  (PASSED|FAILED)|tests ran" $OUT/tests.txt | head -5; grep -E "^\[  FAILED" $OUT/tests.txt | head
[ $rc -eq 0 ] || exit 0
V="main $P/fusedmoe; pdl $P/fusedmoe13"
VARIANTS="$V" TOKENS=1024,4096,16384 ROUNDS=3 timeout 300 scripts/gpu_ab.sh $OUT/ab.txt > /dev/null 2>&1
echo ab rc $?
scripts/ab_summary.py $OUT/ab.txt main
