#!/usr/bin/env bash
# Prepared in session 25 for an H200 (~5 min): why does the pair tile lose where its pairs multicast? At
# deepseek-v3 M=7168 (224 rows per expert: nearly every expert two row blocks, so nearly every pair is one
# expert's) it was 8.4% slower than wg128_n256_ws at 200 replays; at mixtral-8x7b M=16384 it is 2.7% faster
# (bench/results/2026-11-29-h200-session25.md sections 2 and 4). ncu per kernel at the card's clocks, both
# tiles forced: time, SM clock, wgmma-pipe activity, L2 throughput and bytes, DRAM bytes read, grid.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
metrics=gpu__time_duration.sum,sm__cycles_elapsed.avg.per_second,sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_elapsed,lts__throughput.avg.pct_of_peak_sustained_elapsed,lts__t_bytes.sum,dram__bytes_read.sum,launch__grid_size
for cell in "deepseek-v3 7168" "mixtral-8x7b 16384"; do
  set -- $cell
  for tile in wg128_n256_ws wg128_n256_ws_pair; do
    echo "== $1 M=$2 $tile"
    FUSEDMOE_CUDA_FUSED_TILE=$tile PREBUILT=$P PRESET=$1 TOKENS=$2 METRICS=$metrics \
      timeout 120 scripts/gpu_profile.sh $OUT/profile-$1-$tile 2>&1 | tail -8
  done
done
