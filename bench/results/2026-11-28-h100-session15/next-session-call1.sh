#!/usr/bin/env bash
# session 16 call 1 (prepared in session 15): gpu_check on main + both untested patches (warm-up everywhere,
# reduce launched early), then A/B base / warm / early / both at decode and mid sizes.
set -u
cd "$(dirname "$0")/.."
scripts/unpack_prebuilt.sh .prebuilt
chmod +x .prebuilt/fusedmoe_warm .prebuilt/fusedmoe_early
export LD_LIBRARY_PATH=$PWD/.prebuilt:/usr/local/cuda/lib64
nvidia-smi --query-gpu=name --format=csv,noheader
CPU_TESTS=0 PREBUILT=.prebuilt timeout 200 scripts/gpu_check.sh $OUT/gc > $OUT/gpu_check.txt 2>&1
echo gpu_check rc $?
grep -A5 "== summary" $OUT/gpu_check.txt
grep -E "^\[  FAILED" $OUT/gc/gpu_check/cuda_tests.log | head
P=.prebuilt
VARIANTS="base $P/fusedmoe_base; warm $P/fusedmoe_warm; early $P/fusedmoe_early; both $P/fusedmoe" TOKENS=1,8,64,256,1024 ROUNDS=2 timeout 360 scripts/gpu_ab.sh $OUT/ab.txt > /dev/null 2>&1
echo ab rc $?
scripts/ab_summary.py $OUT/ab.txt base
rm -rf $OUT/gc/gpu_check/racecheck.log
