#!/usr/bin/env bash
# Session 33 call 6: the audited GPU tests (NCCL with poisoned outputs, cuda_batched, layer, conformance).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
export NCCL_NVLS_ENABLE=0
timeout 300 $P/fusedmoe_tests --gtest_filter='*Nccl*:*CudaBatched*:*Layer*:*Conformance*:*CudaFusedPersistent*' \
  --gtest_brief=1 2>&1 | tail -8
