#!/usr/bin/env bash
# Session 22, call 5 (one GPU): the token-summed GEMM2 (FUSEDMOE_CUDA_FUSED_TOKEN_SUM=on): its tests, memcheck
# and racecheck on a case with an expert map, then a same-call A/B against main's GEMM2 + reduce (3 rounds).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
san=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
timeout 150 "$P"/fusedmoe_tests --gtest_filter='*tokensum*:CudaFusedSwitches*:CudaFusedWarm*' --gtest_brief=1 2>&1 | tail -15
for tool in memcheck racecheck; do
  timeout 60 "$san" --tool $tool "$P"/fusedmoe_tests --gtest_filter='*expert_map_tokensum*:*stream_odd_sizes_tokensum*' --gtest_brief=1 2>&1 | grep -E "SUMMARY|PASSED|FAILED" | head -4
done
for round in 1 2 3; do
  for ts in off on; do
    FUSEDMOE_CUDA_FUSED_TOKEN_SUM=$ts timeout 60 "$P"/fusedmoe bench --device cuda:0 --preset qwen3-30b-a3b \
      --preset olmoe-1b-7b --tokens 1,2,4,8,16,64 --repeats 20 2>&1 | grep -E "cuda_fused" | sed "s/^/$ts r$round /"
    FUSEDMOE_CUDA_FUSED_TOKEN_SUM=$ts timeout 60 "$P"/fusedmoe bench --device cuda:0 --preset mixtral-8x7b \
      --tokens 1,8 --repeats 20 2>&1 | grep -E "cuda_fused" | sed "s/^/$ts r$round /"
  done
done
