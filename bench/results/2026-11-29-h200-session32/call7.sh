#!/usr/bin/env bash
# Session 32, call 7 (two GPUs): gpu_check and the in-process NCCL tests on the core-API hardening commit
# (the layer runs its shared experts before the routed ones; finalize_weights commits all or nothing).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P CPU_TESTS=0 timeout 300 scripts/gpu_check.sh build/gpu > $OUT/gpu_check.log 2>&1; echo "gpu_check rc=$?"
tail -22 $OUT/gpu_check.log | grep -E "summary|build:|cuda_tests|memcheck|racecheck|passed"
export NCCL_NVLS_ENABLE=0
timeout 200 $P/fusedmoe_tests --gtest_filter='*Nccl*:*Layer*' --gtest_brief=1 2>&1 | tail -4
