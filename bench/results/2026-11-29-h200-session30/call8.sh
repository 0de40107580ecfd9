#!/usr/bin/env bash
# Session 30 call 8: GEMM1's warp-specialised epilogue choosing the activation once per half instead of per
# element (fusedmoe_hoist) against main, 44b (44ef147's file without the expert raster) and f2b7f4a.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
ab() { PREBUILT=$P PRESETS="$1" TOKENS=$2 ROUNDS=3 REPEATS=50 \
  VARIANTS="main $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=$3; hoist $P/fusedmoe_hoist FUSEDMOE_CUDA_FUSED_TILE=$3; hoist_fixed $P/fusedmoe_hoist FUSEDMOE_CUDA_FUSED_TILE=$3 FUSEDMOE_CUDA_FUSED_RASTER=fixed; 44b $P/fusedmoe_44b FUSEDMOE_CUDA_FUSED_TILE=$3; f2b7f4a $P/fusedmoe_f2b7f4a FUSEDMOE_CUDA_FUSED_TILE=$3" \
  timeout 250 scripts/gpu_ab.sh $OUT/ab-$1.txt >/dev/null; scripts/ab_summary.py $OUT/ab-$1.txt main; }
ab olmoe-1b-7b 256 wg64_n256_ws
ab qwen3-30b-a3b 1024 wg128_n256_ws
# The table's own choices, main against hoist, at the sizes on warp-specialised tiles.
PREBUILT=$P ROUNDS=3 REPEATS=100 TOKENS=512,1024,4096,16384 VARIANTS="main $P/fusedmoe; hoist $P/fusedmoe_hoist" \
  timeout 250 scripts/gpu_ab.sh $OUT/ab-table.txt >/dev/null; scripts/ab_summary.py $OUT/ab-table.txt main
