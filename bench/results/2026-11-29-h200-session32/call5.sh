#!/usr/bin/env bash
# Session 32, call 5 (two GPUs): gpu_check on 39bade7 (the layer's and the kernel's expert-parallel checks
# changed; with two GPUs the in-process NCCL tests run too), and the one-failing-rank CLI case over NCCL.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P CPU_TESTS=0 timeout 400 scripts/gpu_check.sh build/gpu > $OUT/gpu_check.log 2>&1; echo "gpu_check rc=$?"
tail -22 $OUT/gpu_check.log
grep -E "Nccl.*(FAILED|OK)" build/gpu/gpu_check/cuda_tests.log | grep -c OK
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 NCCL_NVLS_ENABLE=0
mpi="timeout 60 mpirun --oversubscribe -np 2 -x NCCL_NVLS_ENABLE -x LD_LIBRARY_PATH"
echo "== run --ep 2 --device cuda (both GPUs)"; $mpi $P/fusedmoe run --ep 2 --device cuda --tokens 29 2>&1 | grep -E "checksum|rror"
echo "rc=${PIPESTATUS[0]}"
