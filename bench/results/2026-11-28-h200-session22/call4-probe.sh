#!/usr/bin/env bash
# Session 22, call 4 (one GPU): where decode's time goes in the CUDA-graph replay. A probe build (patch
# call4-stop-after-probe.patch: FUSEDMOE_DEBUG_STOP_AFTER=align|gemm1|gemm2 ends the forward after that kernel)
# times the forward cut after each kernel, 3 interleaved rounds, qwen3-30b-a3b and olmoe-1b-7b at M = 1, 8, 64.
# The cut rows fail the check by design.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
for round in 1 2 3; do
  for variant in full align gemm1 gemm2; do
    stop=$variant; [ "$variant" = full ] && stop=
    FUSEDMOE_DEBUG_STOP_AFTER=$stop timeout 100 "$P"/fusedmoe bench --device cuda:0 --preset qwen3-30b-a3b \
      --preset olmoe-1b-7b --tokens 1,8,64 --repeats 20 2>&1 | grep -E "cuda_fused|floor" | sed "s/^/$variant r$round /"
  done
done
