#!/usr/bin/env bash
# Session 19 call 4: GEMM2 on its own 128-column tile (wg128_n128_ws; the choice "<GEMM1 tile>/<GEMM2 tile>"),
# a finer last wave where GEMM2 has few, deep tiles (mixtral M=1024: 2.3 waves of wg128_n256_ws tiles).
# fusedmoe7 / fusedmoe_tests7 = main + the new tile and the split choice. (1) tests, bounded, (2) A/B.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
timeout 240 $P/fusedmoe_tests7 --gtest_filter='CudaFusedTiles.WarpSpecializedBlocksTakeManyTiles:CudaFusedTiles.Handover*:CudaFusedChoices.*:CudaFused.*wg128n128ws*:CudaFused.*wg128split*:CudaFusedTiles.ResultsDoNotDependOnBatchSizeOrTile:CudaFusedSwitches.*' > $OUT/test.txt 2>&1
rc=$?; echo tests rc $rc; grep -E "^\[  (PASSED|FAILED)|Failure|tests ran" $OUT/test.txt | head -20
[ $rc -eq 0 ] || { tail -30 $OUT/test.txt; exit 0; }
V="main $P/fusedmoe; split $P/fusedmoe7 FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws/wg128_n128_ws; psplit $P/fusedmoe7 FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws_pair/wg128_n128_ws; n128 $P/fusedmoe7 FUSEDMOE_CUDA_FUSED_TILE=wg128_n128_ws"
VARIANTS="$V" TOKENS=1024,4096,16384 ROUNDS=2 timeout 280 scripts/gpu_ab.sh $OUT/ab.txt > /dev/null 2>&1
echo ab rc $?
scripts/ab_summary.py $OUT/ab.txt main
