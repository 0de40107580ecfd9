#!/usr/bin/env bash
# Session 17's second call (prepared in session 16; ~9 minutes, best on an H100): (1) the H100 table's
# one-tile cells against the warp-specialised tile now that GEMM2 reads its A rows by TMA (deepseek
# M = 1024/4096), (2) the bench with the PyTorch peers on main. If the gather landed, repack first.
set -u
cd "$(dirname "$0")/.."
scripts/unpack_prebuilt.sh .prebuilt
P=.prebuilt
export LD_LIBRARY_PATH=$PWD/$P:/usr/local/cuda/lib64
nvidia-smi --query-gpu=name --format=csv,noheader
VARIANTS="table $P/fusedmoe; ws $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws; ws64 $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg64_n256_ws" PRESETS=deepseek-v3 TOKENS=1024,4096 ROUNDS=2 timeout 150 scripts/gpu_ab.sh $OUT/tiles.txt > /dev/null 2>&1
echo tiles rc $?
scripts/ab_summary.py $OUT/tiles.txt table
PREBUILT=$P timeout 420 scripts/gpu_bench.sh $OUT/bench > $OUT/bench.txt 2>&1
echo bench rc $?
grep -E "^floor|cuda_fused" $OUT/bench.txt
