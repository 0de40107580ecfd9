#!/usr/bin/env bash
# Session 18's third call (prepared in session 17; ~3 minutes): the L2 prefetch of the warp-specialised
# GEMMs' k-tiles, second form (bench/results/2026-11-28-h200-session17/l2-prefetch-untested.patch):
# weights by one TMA tensor prefetch per k-tile, GEMM1's gathered A rows by prefetch.global.L2 (the load
# path; session 17's per-row bulk prefetches through the TMA unit were 1.3-1.6x slower).
# FUSEDMOE_CUDA_FUSED_L2_PREFETCH=N: N k-tiles ahead; N + 64: the weights only.
# .prebuilt: fusedmoe / fusedmoe_tests = main (e2977d0); fusedmoe2 / fusedmoe_tests2 = main + the patch;
# fusedmoe4 = main with kSignalLag 1 instead of 2 (signal-lag-1-untested.patch: the lagged signal's
# fallback, if the async signal of the first call fails; a constant, the same mechanism).
set -u
cd "$(dirname "$0")/.."
scripts/unpack_prebuilt.sh .prebuilt >/dev/null
P=.prebuilt
chmod +x $P/fusedmoe2 $P/fusedmoe_tests2 $P/fusedmoe4
export LD_LIBRARY_PATH=$PWD/$P:/usr/local/cuda/lib64
nvidia-smi --query-gpu=name --format=csv,noheader
timeout 60 $P/fusedmoe_tests2 --gtest_filter='CudaFusedTiles.L2Prefetch*' > $OUT/test.txt 2>&1
rc=$?; echo prefetch bit test rc $rc; grep -E "^\[  (PASSED|FAILED)" $OUT/test.txt | head
[ $rc -eq 0 ] || exit 0
V="off $P/fusedmoe; off2 $P/fusedmoe2; lag1 $P/fusedmoe4"
for d in 2 4 8; do V="$V; d$d $P/fusedmoe2 FUSEDMOE_CUDA_FUSED_L2_PREFETCH=$d; w$d $P/fusedmoe2 FUSEDMOE_CUDA_FUSED_L2_PREFETCH=$((d + 64))"; done
PRESETS="qwen3-30b-a3b olmoe-1b-7b" VARIANTS="$V" TOKENS=1024,4096,16384 ROUNDS=1 timeout 200 scripts/gpu_ab.sh $OUT/ab.txt > /dev/null 2>&1
echo ab rc $?
scripts/ab_summary.py $OUT/ab.txt off
