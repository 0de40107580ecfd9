#!/usr/bin/env bash
# Session 22, call 7 (one GPU): decode's L2 warm-up budget on the H200 (tuned on the H100 in session 10: 8 MiB).
# FUSEDMOE_CUDA_FUSED_WARM=off and WARM_MIB 4 / 8 / 16, 3 interleaved rounds, qwen3 and olmoe at M = 1, 2, 4.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
for round in 1 2 3; do
  for v in off 4 8 16; do
    if [ $v = off ]; then env="FUSEDMOE_CUDA_FUSED_WARM=off"; else env="FUSEDMOE_CUDA_FUSED_WARM_MIB=$v"; fi
    env $env timeout 60 "$P"/fusedmoe bench --device cuda:0 --preset qwen3-30b-a3b --preset olmoe-1b-7b \
      --tokens 1,2,4 --repeats 30 2>&1 | grep -E "cuda_fused" | sed "s/^/$v r$round /"
  done
done
