#!/usr/bin/env bash
# Session 22, call 8 (one GPU): is mixtral-8x7b M=4096's bimodal time per process? Eight separate processes
# (fresh allocations each), then qwen3 M=4096 the same way for comparison.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
for i in 1 2 3 4 5 6 7 8; do
  timeout 40 "$P"/fusedmoe bench --device cuda:0 --preset mixtral-8x7b --tokens 4096 --repeats 20 2>&1 | grep cuda_fused | sed "s/^/p$i /"
done
for i in 1 2 3 4 5 6; do
  timeout 30 "$P"/fusedmoe bench --device cuda:0 --preset qwen3-30b-a3b --tokens 4096 --repeats 20 2>&1 | grep cuda_fused | sed "s/^/p$i /"
done
