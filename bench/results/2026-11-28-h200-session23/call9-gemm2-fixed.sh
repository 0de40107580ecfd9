#!/usr/bin/env bash
# Session 23, call 9 (one GPU): expert groups in GEMM1 only (GEMM2 on the fixed groups; a probe build,
# call9-gemm2-fixed-probe.patch) against main's expert groups in both, at the cells where ncu had GEMM2 read
# more in expert groups. 2 rounds.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
VARIANTS="main $P/fusedmoe; g2fixed $P/fusedmoe_g2fixed FUSEDMOE_PROBE_GEMM2_FIXED=1" PRESETS="deepseek-v3 mixtral-8x7b" \
  TOKENS=4096,16384 ROUNDS=2 REPEATS=20 timeout 200 scripts/gpu_ab.sh $OUT/ab.txt > /dev/null 2>&1
python3 scripts/ab_summary.py $OUT/ab.txt main 2>&1 | tail -6
