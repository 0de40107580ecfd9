#!/usr/bin/env bash
# Session 24 call 3 (H200): the mma.sync GEMMs letting their successor launch early also when their grid
# needs several waves (probe: FUSEDMOE_PROBE_TRIGGER=gemm2|both; main triggers only in one-wave grids),
# at the decode sizes where mma.sync tiles run. Session 4 (H100, older kernels) had mixtral M=1 7% slower.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P PRESETS="qwen3-30b-a3b olmoe-1b-7b mixtral-8x7b deepseek-v3" TOKENS=1,8,64 ROUNDS=3 \
  VARIANTS="main $P/fusedmoe; g1 $P/fusedmoe_probe FUSEDMOE_PROBE_TRIGGER=gemm1; both $P/fusedmoe_probe FUSEDMOE_PROBE_TRIGGER=both" \
  timeout 500 scripts/gpu_ab.sh $OUT/ab.txt >/dev/null
scripts/ab_summary.py $OUT/ab.txt main
grep -c passed $OUT/ab.txt; grep -v passed $OUT/ab.txt | head
