#!/usr/bin/env bash
# Session 32, call 4 (two GPUs): all2all_batched at prefill sizes with --batched-capacity sized to the batch,
# against the default 256, allgather and one GPU (qwen3-30b-a3b; `run`: host clock around a forward with the
# router, slowest rank, median of 20).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 NCCL_NVLS_ENABLE=0 FUSEDMOE_NUM_THREADS=2
mpi="timeout 100 mpirun --oversubscribe -np 2 -x NCCL_NVLS_ENABLE -x LD_LIBRARY_PATH -x FUSEDMOE_NUM_THREADS"
for tokens in 1024 4096 16384; do
  echo "== one GPU M=$tokens"; "$P"/fusedmoe run --device cuda:0 --preset qwen3-30b-a3b --tokens $tokens --repeats 20 2>&1 | grep -E "^time"
  echo "== allgather M=$tokens"; $mpi "$P"/fusedmoe run --ep 2 --ep-mode allgather --device cuda --preset qwen3-30b-a3b --tokens $tokens --repeats 20 2>&1 | grep -E "^time|rror"
  for cap in 256 1024 4096 8192; do
    [ $cap -gt $tokens ] && continue
    echo "== all2all_batched capacity $cap M=$tokens"
    $mpi "$P"/fusedmoe run --ep 2 --ep-mode all2all_batched --batched-capacity $cap --device cuda --preset qwen3-30b-a3b --tokens $tokens --repeats 20 2>&1 | grep -E "^time|rror|dropped"
  done
done
echo "== check all2all_batched capacity 8192 M=16384"
$mpi "$P"/fusedmoe check --ep 2 --ep-mode all2all_batched --batched-capacity 8192 --device cuda --preset qwen3-30b-a3b --tokens 16384 2>&1 | tail -4
