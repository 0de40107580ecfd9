#!/usr/bin/env bash
# Session 33 call 1 (two GPUs): the NCCL set-up agreement, the staging size and the robustness commits.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
chmod +x $P/fusedmoe_mpi_tests $P/fusedmoe_mpi_nccl_tests
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 FUSEDMOE_NUM_THREADS=1 NCCL_NVLS_ENABLE=0
echo "== 1. CPU MPI tests; the NCCL set-up test with rank 0 on a real cuda:0"
FUSEDMOE_MPI_TEST_ALL_RANKS=1 timeout 120 mpirun --oversubscribe -np 2 $P/fusedmoe_mpi_tests \
  --gtest_filter='*Handshake*' 2>&1 | grep -E "OK|FAILED|Failure|rank 1" | head -12
for n in 2 4; do timeout 200 mpirun --oversubscribe -np $n $P/fusedmoe_mpi_tests 2>&1 | tail -2; done
echo "== 2. NCCL expert parallelism over MPI (make_nccl_communicator over the bootstrap)"
timeout 240 mpirun -np 2 $P/fusedmoe_mpi_nccl_tests 2>&1 | tail -4
echo "== 3. CLI"
timeout 120 mpirun -np 2 $P/fusedmoe run --ep 2 --device cuda --preset qwen3-30b-a3b --tokens 256 2>&1 | tail -4
start=$(date +%s.%N)
timeout 60 mpirun -np 1 $P/fusedmoe run --ep 2 --device cuda --tokens 8 : -np 1 $P/fusedmoe run --ep 2 \
  --device cuda:99 --tokens 8 2>&1 | grep -v "^ *$" | head -8
echo "rc=${PIPESTATUS[0]} in $(echo "$(date +%s.%N) - $start" | bc) s"
echo "== 4. in-process NCCL + layer tests, then gpu_check"
timeout 200 $P/fusedmoe_tests --gtest_filter='*Nccl*:*Layer*' --gtest_brief=1 2>&1 | tail -4
PREBUILT=$P CPU_TESTS=0 timeout 330 scripts/gpu_check.sh build/gpu > $OUT/gpu_check.log 2>&1; echo "gpu_check rc=$?"
tail -22 $OUT/gpu_check.log | grep -E "summary|build:|cuda_tests|memcheck|racecheck|passed"
