#!/usr/bin/env bash
# Session 19's first call (prepared in session 18; ~5 minutes): GEMM2 in k-splits
# (bench/results/2026-11-28-h200-session18/gemm2-k-splits-untested.patch; FUSEDMOE_CUDA_FUSED_GEMM2_SPLITS).
# mixtral-8x7b M=1024's GEMM2 is 2.3 waves of 132 SMs (23% of it idle in the last wave); each split writes
# partial rows to its own plane and the reduce sums the planes. (1) its tests alone, bounded (a producer and
# consumer that disagree on a tile's k-tiles hang), (2) A/B main / patch at 1, 2, 3 splits.
# .prebuilt: fusedmoe / fusedmoe_tests = main (see commit.txt); fusedmoe5 / fusedmoe_tests5 = main + the patch.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
timeout 150 $P/fusedmoe_tests5 --gtest_filter='CudaFusedTiles.Gemm2Splits*:CudaFusedSwitches.*:CudaFusedTiles.Handover*' > $OUT/test.txt 2>&1
rc=$?; echo split tests rc $rc; grep -E "^\[  (PASSED|FAILED)|Failure" $OUT/test.txt | head
[ $rc -eq 0 ] || { echo "failed or hung: no A/B"; exit 0; }
V="main $P/fusedmoe; s1 $P/fusedmoe5; s2 $P/fusedmoe5 FUSEDMOE_CUDA_FUSED_GEMM2_SPLITS=2; s3 $P/fusedmoe5 FUSEDMOE_CUDA_FUSED_GEMM2_SPLITS=3"
PRESETS=mixtral-8x7b VARIANTS="$V" TOKENS=256,1024,4096,16384 ROUNDS=3 timeout 200 scripts/gpu_ab.sh $OUT/ab_mixtral.txt > /dev/null 2>&1
echo ab mixtral rc $?
scripts/ab_summary.py $OUT/ab_mixtral.txt main
PRESETS="qwen3-30b-a3b olmoe-1b-7b deepseek-v3" VARIANTS="$V" TOKENS=1024,4096 ROUNDS=1 timeout 150 scripts/gpu_ab.sh $OUT/ab_others.txt > /dev/null 2>&1
echo ab others rc $?
scripts/ab_summary.py $OUT/ab_others.txt main
