#!/usr/bin/env bash
# Session 23, call 5 (one GPU): the issue's bench with the PyTorch peers on 44ef147 (expert groups), the floor
# measured in the same run; then mixtral-8x7b M=4096 in six processes (does the spread between processes stay?).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P timeout 480 scripts/gpu_bench.sh $OUT/bench > $OUT/bench.log 2>&1
echo "bench rc $?"; grep -E "^(qwen3|mixtral|deepseek|olmoe)" $OUT/bench.log | grep -E "cuda_fused " | head -40
for i in 1 2 3 4 5 6; do
  timeout 40 "$P"/fusedmoe bench --device cuda:0 --preset mixtral-8x7b --tokens 4096 --repeats 20 2>&1 | grep "cuda_fused " | sed "s/^/p$i /"
done
