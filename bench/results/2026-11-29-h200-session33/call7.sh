#!/usr/bin/env bash
# Session 33 call 7: the last audited GPU tests (CUDA chunking, whole-layer graph, persistent counters) and
# the suites of call 6 again.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
export NCCL_NVLS_ENABLE=0
timeout 400 $P/fusedmoe_tests --gtest_filter='*Nccl*:*CudaBatched*:*Layer*:*Conformance*:*CudaFusedPersistent*' \
  --gtest_brief=1 2>&1 | tail -6
