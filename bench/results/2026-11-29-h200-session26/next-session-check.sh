#!/usr/bin/env bash
# Prepared in session 26 for the next session's first call, any Hopper card (~4 min): gpu_check on main's
# packed binaries (every CUDA test, then compute-sanitizer memcheck and racecheck on the small cases). Main's
# kernels changed after session 26's last GPU run: the one-block scans of cuda_fused's align and of the
# library paths' sort now share cuda_common/kernels/block_scan.cuh (b41bb99), with tests of the scans over two
# chunks of experts (648fbdb).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P CPU_TESTS=0 timeout 300 scripts/gpu_check.sh build/gpu > $OUT/check.log 2>&1
echo "gpu_check rc $?"; grep -E "PASSED|FAILED|ERROR SUMMARY|RACECHECK SUMMARY" $OUT/check.log | head -20
