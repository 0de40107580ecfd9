#!/usr/bin/env bash
# Session 20's second call (prepared in session 19; ~3 minutes, any Hopper card): how busy the tensor pipe is
# in each GEMM at prefill. A rough estimate from session 19's ncu times (results section 3, profiler clocks
# scaled to the bench's) puts GEMM1 at ~83% of cuBLAS's rate on its padded rows at qwen3 M=4096 and ~94% at
# M=16384. Tensor-pipe activity per kernel says where the gap sits: GEMM1 or GEMM2, and which cells.
# ncu metric names checked on the H200 in session 19 (ncu --query-metrics --chip gh100).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
M="gpu__time_duration.sum,sm__pipe_tensor_op_hmma_type_hmma_hgmma_qgmma_cycles_active.avg.pct_of_peak_sustained_elapsed,dram__throughput.avg.pct_of_peak_sustained_elapsed,lts__throughput.avg.pct_of_peak_sustained_elapsed"
for cell in "qwen3-30b-a3b 1024" "qwen3-30b-a3b 4096" "qwen3-30b-a3b 16384" "olmoe-1b-7b 1024" "olmoe-1b-7b 4096" "mixtral-8x7b 1024" "deepseek-v3 4096"; do
  set -- $cell
  echo "== $1 M=$2 (time, tensor %, DRAM %, L2 %)"
  PREBUILT=$P PRESET=$1 TOKENS=$2 METRICS=$M timeout 150 scripts/gpu_profile.sh $OUT/profile 2>&1 | tail -5
done
