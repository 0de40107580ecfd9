#!/usr/bin/env bash
# Session 17's first call (prepared in session 16; ~5 minutes): (1) the load probe at qwen3 M = 4096/16384
# (which operand's path bounds the warp-specialised GEMMs), (2) gpu_check on GEMM1's TMA gather (untested),
# (3) A/B of main / gather / gather off at M = 1024-16384.
set -u
cd "$(dirname "$0")/.."
scripts/unpack_prebuilt.sh .prebuilt
P=.prebuilt
chmod +x $P/fusedmoe_gather $P/tests_gather $P/fusedmoe_probe
export LD_LIBRARY_PATH=$PWD/$P:/usr/local/cuda/lib64
nvidia-smi --query-gpu=name --format=csv,noheader
# (1) FUSEDMOE_PROBE bits: 15 = no MMA/epilogue in either GEMM; +16 GEMM1 without its A, +32 without its
# weights, +64 GEMM2 without its A, +128 without its weights. Timing only (results wrong).
V="base $P/fusedmoe"
for b in 15 31 47 79 143 255; do V="$V; p$b $P/fusedmoe_probe FUSEDMOE_PROBE=$b"; done
PRESETS=qwen3-30b-a3b VARIANTS="$V" TOKENS=4096,16384 ROUNDS=1 timeout 120 scripts/gpu_ab.sh $OUT/probe.txt > /dev/null 2>&1
echo probe rc $?
scripts/ab_summary.py $OUT/probe.txt base
# (2) the gather's own test first, alone and bounded (a wrong byte count would hang, not fail), then
# gpu_check on the gather's binaries (it runs $P/fusedmoe_tests and $P/fusedmoe).
timeout 90 $P/tests_gather --gtest_filter='CudaFusedTiles.TmaGather*' > $OUT/gather_test.txt 2>&1
gather_rc=$?
echo gather test rc $gather_rc; tail -3 $OUT/gather_test.txt
[ $gather_rc -eq 0 ] || { echo "gather failed or hung: skipping its gpu_check and A/B"; exit 0; }
mkdir -p $P/held && mv $P/fusedmoe_tests $P/fusedmoe $P/held/
cp $P/tests_gather $P/fusedmoe_tests && cp $P/fusedmoe_gather $P/fusedmoe && chmod +x $P/fusedmoe_tests $P/fusedmoe
CPU_TESTS=0 PREBUILT=$P timeout 220 scripts/gpu_check.sh $OUT/gc > $OUT/gpu_check.txt 2>&1
echo gpu_check rc $?
grep -A5 "== summary" $OUT/gpu_check.txt
grep -E "^\[  FAILED" $OUT/gc/gpu_check/cuda_tests.log | head
mv $P/held/fusedmoe_tests $P/held/fusedmoe $P/ && rmdir $P/held
# (3) the A/B
VARIANTS="base $P/fusedmoe; gather $P/fusedmoe_gather; cpasync $P/fusedmoe_gather FUSEDMOE_CUDA_FUSED_TMA_GATHER=off" TOKENS=1024,4096,16384 ROUNDS=2 timeout 200 scripts/gpu_ab.sh $OUT/ab.txt > /dev/null 2>&1
echo ab rc $?
scripts/ab_summary.py $OUT/ab.txt base
rm -f $OUT/gc/gpu_check/racecheck.log
