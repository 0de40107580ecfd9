#!/usr/bin/env bash
# Session 22, call 3 (two GPUs): `run --ep 2 --device cuda` over NCCL (new in 8720e13) in every mode against
# one GPU (qwen3-30b-a3b), the new ctest entry's command, and one `check --ep 2` as before.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
chmod +x "$P"/fusedmoe_mpi_nccl_tests
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 NCCL_NVLS_ENABLE=0 FUSEDMOE_NUM_THREADS=2
mpi="timeout 150 mpirun --oversubscribe -np 2 -x NCCL_NVLS_ENABLE -x LD_LIBRARY_PATH -x FUSEDMOE_NUM_THREADS"
echo "== the ctest entry's command"; "$P"/fusedmoe_mpi_nccl_tests --require-gpus 2 && $mpi "$P"/fusedmoe run --ep 2 --ep-mode all2all_batched --device cuda --tokens 29; echo "rc $?"
echo "== check --ep 2 all2all M=300"; $mpi "$P"/fusedmoe check --ep 2 --ep-mode all2all --device cuda --preset qwen3-30b-a3b --tokens 300 2>&1 | tail -4
for tokens in 64 1024 4096 16384; do
  echo "== run, one GPU, M=$tokens"; "$P"/fusedmoe run --device cuda:0 --preset qwen3-30b-a3b --tokens $tokens --repeats 20 2>&1 | grep -E "time|checksum"
  for mode in allgather all2all all2all_batched; do
    echo "== run --ep 2 --ep-mode $mode M=$tokens"
    $mpi "$P"/fusedmoe run --ep 2 --ep-mode $mode --device cuda --preset qwen3-30b-a3b --tokens $tokens --repeats 20 2>&1 | grep -E "source|backend|time|rror"
  done
done
