#!/usr/bin/env bash
# Session 20's sixth call: compute-sanitizer memcheck and racecheck on the pipelined reduce (fusedmoe_tests10)
# over gpu_check's small cases, then dev2's profile (tensor pipe, DRAM, L2 per kernel at seven prefill cells).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
san=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer | head -1)
small='Cases/CudaFused.*/odd_sizes_*:Cases/CudaFused.*/expert_map_*:Cases/CudaFused.*/decode_m1_*:Cases/CudaFused.*/stream_odd_sizes_stream:Cases/CudaFusedPersistent.*/odd_sizes:Cases/CudaFusedPersistent.*/all_on_one_expert_k1:Cases/CudaFusedPersistent.*/duplicate_ids:Cases/CudaBatched.*/odd_sizes'
timeout 200 $san --tool memcheck --error-exitcode 1 $P/fusedmoe_tests10 --gtest_filter="$small" > $OUT/memcheck.txt 2>&1
echo memcheck rc $?; grep -E "ERROR SUMMARY|PASSED|FAILED" $OUT/memcheck.txt | tail -3
timeout 200 $san --tool racecheck --error-exitcode 1 $P/fusedmoe_tests10 --gtest_filter='Cases/CudaFused.*/odd_sizes_*:Cases/CudaFused.*/duplicate_ids_stream:Cases/CudaFusedPersistent.*/odd_sizes:Cases/CudaFusedPersistent.*/duplicate_ids' > $OUT/racecheck.txt 2>&1
echo racecheck rc $?; grep -E "RACECHECK SUMMARY|ERROR SUMMARY|PASSED|FAILED" $OUT/racecheck.txt | tail -3
.prebuilt/dev2.sh 2>&1 | tail -60
