#!/usr/bin/env bash
# Session 32, call 3: 0f8c97a (wgmma from 14 rows; abort_mpi_job) on the GPU: gpu_check, the heuristic new
# against 47772ca at 12-16 rows per expert, and one failing rank of an NCCL job ending the job.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P CPU_TESTS=0 timeout 330 scripts/gpu_check.sh build/gpu > $OUT/gpu_check.log 2>&1; echo "gpu_check rc=$?"
tail -22 $OUT/gpu_check.log
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
echo "== one rank fails (rank 1 on cuda:99, rank 0 on cuda:0)"
start=$(date +%s%N)
timeout 60 mpirun --oversubscribe -np 1 $P/fusedmoe run --ep 2 --tokens 8 --device cuda:0 \
  : -np 1 $P/fusedmoe run --ep 2 --tokens 8 --device cuda:99 2>&1 | tail -4
echo "rc=${PIPESTATUS[0]} in $(( ($(date +%s%N) - start) / 1000000 )) ms"
echo "== one GPU visible, two ranks on --device cuda (rank 1 takes cuda:1)"
start=$(date +%s%N)
CUDA_VISIBLE_DEVICES=0 timeout 60 mpirun --oversubscribe -np 2 $P/fusedmoe run --ep 2 --tokens 8 --device cuda 2>&1 | tail -4
echo "rc=${PIPESTATUS[0]} in $(( ($(date +%s%N) - start) / 1000000 )) ms"
ab() {  # ab <preset> <tokens>
  PREBUILT=$P PRESETS="$1" TOKENS=$2 ROUNDS=2 \
    VARIANTS="old $P/fusedmoe_base FUSEDMOE_TUNE_BUILTIN=off; new $P/fusedmoe FUSEDMOE_TUNE_BUILTIN=off" \
    timeout 100 scripts/gpu_ab.sh $OUT/rows-$1.txt >/dev/null
  scripts/ab_summary.py $OUT/rows-$1.txt old | tail -n +3
}
echo "== heuristic (FUSEDMOE_TUNE_BUILTIN=off): old = 47772ca (wgmma from 13), new (from 14)"
ab qwen3-30b-a3b 192,208,224,256
ab olmoe-1b-7b 96,104,112,128
ab mixtral-8x7b 48,52,56,64
ab deepseek-v3 384,416,448,512
