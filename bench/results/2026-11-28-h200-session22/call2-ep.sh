#!/usr/bin/env bash
# Session 22, two GPUs of one host: expert parallelism over NCCL with main's binaries (.prebuilt, packed at
# f2b7f4a plus fusedmoe_mpi_nccl_tests): the NCCL tests in one process and under mpirun, `check --ep 2` in
# every mode, and `run --ep 2` timings against one GPU (qwen3-30b-a3b).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
chmod +x "$P"/fusedmoe_mpi_nccl_tests
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 NCCL_NVLS_ENABLE=0 FUSEDMOE_NUM_THREADS=2
nvidia-smi --query-gpu=index,name,pci.bus_id --format=csv,noheader
nvidia-smi topo -m 2>/dev/null | head -4
mpi="timeout 150 mpirun --oversubscribe -np 2 -x NCCL_NVLS_ENABLE -x LD_LIBRARY_PATH -x FUSEDMOE_NUM_THREADS"
echo "== NCCL tests, one process"; timeout 150 "$P"/fusedmoe_tests --gtest_filter='*Nccl*' --gtest_brief=1 2>&1 | tail -6
echo "== NCCL tests, mpirun -np 2"; $mpi "$P"/fusedmoe_mpi_nccl_tests --gtest_brief=1 2>&1 | tail -8
for tokens in 29 300; do
  for mode in allgather all2all all2all_batched; do
    echo "== check --ep 2 --ep-mode $mode M=$tokens"
    $mpi "$P"/fusedmoe check --ep 2 --ep-mode $mode --device cuda --preset qwen3-30b-a3b --tokens $tokens 2>&1 | tail -4
  done
done
for tokens in 64 1024 4096; do
  echo "== run, one GPU, M=$tokens"; "$P"/fusedmoe run --device cuda:0 --preset qwen3-30b-a3b --tokens $tokens --repeats 20 2>&1 | grep -E "time|backend"
  for mode in allgather all2all all2all_batched; do
    echo "== run --ep 2 --ep-mode $mode M=$tokens"
    $mpi "$P"/fusedmoe run --ep 2 --ep-mode $mode --device cuda --preset qwen3-30b-a3b --tokens $tokens --repeats 20 2>&1 | grep -E "time|backend|rror"
  done
done
