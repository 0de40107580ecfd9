#!/usr/bin/env bash
# Session 22, call 6 (one GPU): main's CUDA tests on HEAD (9d09aba + the token-summed GEMM2 v2 in the tree:
# 8 warps per block, each on its own range and ring), sanitizers on the token-sum cases, then the same-call
# A/B of FUSEDMOE_CUDA_FUSED_TOKEN_SUM=off/on (3 rounds).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
san=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
timeout 120 "$P"/fusedmoe_tests --gtest_filter='Cuda*:*/Cuda*' --gtest_brief=1 2>&1 | tail -12
for tool in memcheck racecheck; do
  timeout 60 "$san" --tool $tool "$P"/fusedmoe_tests --gtest_filter='*expert_map_tokensum*:*stream_odd_sizes_tokensum*:*topk16_tokensum*' --gtest_brief=1 2>&1 | grep -E "SUMMARY|PASSED|FAILED" | head -4
done
for round in 1 2 3; do
  for ts in off on; do
    FUSEDMOE_CUDA_FUSED_TOKEN_SUM=$ts timeout 60 "$P"/fusedmoe bench --device cuda:0 --preset qwen3-30b-a3b \
      --preset olmoe-1b-7b --tokens 1,2,4,8,16,64 --repeats 20 2>&1 | grep -E "cuda_fused" | sed "s/^/$ts r$round /"
    FUSEDMOE_CUDA_FUSED_TOKEN_SUM=$ts timeout 60 "$P"/fusedmoe bench --device cuda:0 --preset mixtral-8x7b \
      --tokens 1,8 --repeats 20 2>&1 | grep -E "cuda_fused" | sed "s/^/$ts r$round /"
  done
done
