#!/usr/bin/env bash
# Prepared in session 28 for the next session, any Hopper card (~4 min). .prebuilt/fusedmoe_threads: branch
# align-small-block (patch: next-session-align-threads.patch), where FUSEDMOE_ALIGN_THREADS=128|256|512|1024
# sets the one-block align's block size (main: 1024); fusedmoe_tests_threads: branch align-threads-probe (the
# same + the clock64 phase probe, patch next-session-align-threads-probe.patch). The clock64
# probe (session 28) had every instruction of the 1024-thread align cost 8 issue slots per scheduler; the
# scan (1.5k cycles) and the count (1.4k) are what is left at qwen3 M=1. (1) align tests at each size;
# (2) the phase probe at each size; (3) decode A/B, 3 rounds, M = 1 / 8 / 64, all four presets. Land a size rule only where it wins 3 rounds.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
for t in 128 256 512; do
  FUSEDMOE_ALIGN_THREADS=$t timeout 60 "$P"/fusedmoe_tests_threads \
    --gtest_filter='CudaFusedAlign*:Cases/CudaFused.*/decode*:Cases/CudaFused.*/e256*' > $OUT/tests-$t.log 2>&1
  echo "threads $t tests rc $?"; grep -E "^\[  (PASSED|FAILED)" $OUT/tests-$t.log | head -3
done
for t in 1024 512 256 128; do
  FUSEDMOE_ALIGN_THREADS=$t timeout 60 "$P"/fusedmoe_tests_threads --gtest_also_run_disabled_tests \
    --gtest_filter='*AlignProbe*' 2>&1 | grep -E "threads\]|scan sums|per-warp|scatter  |graph replay"
done
PREBUILT=$P PRESETS="qwen3-30b-a3b olmoe-1b-7b deepseek-v3 mixtral-8x7b" TOKENS=1,8,64 ROUNDS=3 REPEATS=20 \
  VARIANTS="t1024 $P/fusedmoe_threads; t512 $P/fusedmoe_threads FUSEDMOE_ALIGN_THREADS=512; t256 $P/fusedmoe_threads FUSEDMOE_ALIGN_THREADS=256; t128 $P/fusedmoe_threads FUSEDMOE_ALIGN_THREADS=128" \
  timeout 300 scripts/gpu_ab.sh $OUT/ab-align-threads.txt >/dev/null
scripts/ab_summary.py $OUT/ab-align-threads.txt t1024
