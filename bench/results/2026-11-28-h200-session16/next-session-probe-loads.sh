#!/usr/bin/env bash
# session 16 call 7: the load path of the warp-specialised GEMMs with MMAs and epilogues skipped (15), then
# also without GEMM1's A (16), GEMM1's weights (32), GEMM2's A (64), GEMM2's weights (128). Timing only.
set -u
cd "$(dirname "$0")/.."
scripts/unpack_prebuilt.sh .prebuilt
P=.prebuilt
export LD_LIBRARY_PATH=$PWD/$P:/usr/local/cuda/lib64
V="base $P/fusedmoe"
for b in 15 31 47 79 143 255; do V="$V; p$b $P/fusedmoe FUSEDMOE_PROBE=$b"; done
PRESETS=qwen3-30b-a3b VARIANTS="$V" TOKENS=4096,16384 ROUNDS=1 timeout 120 scripts/gpu_ab.sh $OUT/ab.txt > /dev/null 2>&1
echo ab rc $?
scripts/ab_summary.py $OUT/ab.txt base
