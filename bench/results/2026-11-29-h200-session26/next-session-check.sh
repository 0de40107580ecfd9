#!/usr/bin/env bash
# Prepared in session 26 for the next session's first call, any Hopper card (~4 min): gpu_check (every CUDA
# test, then compute-sanitizer memcheck and racecheck on the small cases) on the tests of branch
# `scan-helper` (687f9ac, on main 1b8e817), packed as fusedmoe_tests_scan. The branch holds what session 26
# wrote after its last GPU run and took off main for that reason: cuda_common/kernels/block_scan.cuh (the one
# block-wide scan of cuda_fused's align and of the library paths' sort), cuda::grid_fills_a_wave, and tests of
# the scans over two chunks of experts (a one-block align over 2048 experts; the grouped paths' sort over
# 1100). A helper's review found no bug. Merge the branch into main if every test passes and both sanitizers
# are clean (its kernels otherwise equal main's, so no A/B is needed).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
S=.prebuilt-scan
rm -rf $S && mkdir $S
cp "$P/fusedmoe_tests_scan" $S/fusedmoe_tests && chmod +x $S/fusedmoe_tests
for f in "$P"/fusedmoe "$P"/lib*; do ln -s "$PWD/$f" $S/; done
echo "scan-helper 687f9ac (tests only; CLI: main $(cat "$P/commit.txt"))" > $S/commit.txt
PREBUILT=$S CPU_TESTS=0 timeout 300 scripts/gpu_check.sh build/gpu > $OUT/check.log 2>&1
echo "gpu_check rc $?"; grep -E "PASSED|FAILED|ERROR SUMMARY|RACECHECK SUMMARY" $OUT/check.log | head -20
