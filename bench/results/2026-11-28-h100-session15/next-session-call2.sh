#!/usr/bin/env bash
# session 16 call 2 (prepared in session 15): gpu_check on main + gemm2-tma-rows-untested.patch, then A/B at
# prefill: base (main) / tma (patch) / gathered (patch, FUSEDMOE_CUDA_FUSED_TMA_ROWS=off).
set -u
cd "$(dirname "$0")/.."
scripts/unpack_prebuilt.sh .prebuilt
P=.prebuilt
# gpu_check runs $P/fusedmoe_tests and $P/fusedmoe: put the patch's binaries there for it.
mkdir -p $P/held && mv $P/fusedmoe_tests $P/fusedmoe $P/held/
cp $P/tests_tmarows $P/fusedmoe_tests && cp $P/fusedmoe_tmarows $P/fusedmoe && chmod +x $P/fusedmoe_tests $P/fusedmoe
export LD_LIBRARY_PATH=$PWD/$P:/usr/local/cuda/lib64
nvidia-smi --query-gpu=name --format=csv,noheader
CPU_TESTS=0 PREBUILT=$P timeout 200 scripts/gpu_check.sh $OUT/gc > $OUT/gpu_check.txt 2>&1
echo gpu_check rc $?
grep -A5 "== summary" $OUT/gpu_check.txt
grep -E "^\[  FAILED" $OUT/gc/gpu_check/cuda_tests.log | head
VARIANTS="base $P/fusedmoe_base; tma $P/fusedmoe; gathered $P/fusedmoe FUSEDMOE_CUDA_FUSED_TMA_ROWS=off" TOKENS=1024,4096,16384 ROUNDS=2 timeout 300 scripts/gpu_ab.sh $OUT/ab.txt > /dev/null 2>&1
echo ab rc $?
scripts/ab_summary.py $OUT/ab.txt base
rm -f $OUT/gc/gpu_check/racecheck.log
mv $P/held/fusedmoe_tests $P/held/fusedmoe $P/ && rmdir $P/held
