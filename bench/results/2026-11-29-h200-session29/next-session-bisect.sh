#!/usr/bin/env bash
# Prepared in session 29 for the next session's first call (~2 min, any Hopper card; copy into .prebuilt/).
# olmoe M=256 (wg64_n256_ws) and qwen3 M=1024 (wg128_n256_ws) are 5.2% / 2.2% slower on main than on f2b7f4a
# (session 29 call 9). Binaries in .prebuilt/ (CLI only, built here for 90a): fusedmoe_f2b7f4a (session 22's
# bench commit), fusedmoe_44ef147 (expert-group raster), fusedmoe_4f7d079 (padding warpgroups skip their
# MMAs), fusedmoe_98ea3af (block-scan helper), fusedmoe_cfe449d (align loads up front); fusedmoe = main.
# Also main with FUSEDMOE_CUDA_FUSED_RASTER=fixed (the fixed raster groups, the order before 44ef147).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
for b in f2b7f4a 44ef147 4f7d079 98ea3af cfe449d; do chmod +x $P/fusedmoe_$b; done
ab() { PREBUILT=$P PRESETS="$1" TOKENS=$2 ROUNDS=2 REPEATS=50 \
  VARIANTS="main $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=$3; fixed $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=$3 FUSEDMOE_CUDA_FUSED_RASTER=fixed; f2b7f4a $P/fusedmoe_f2b7f4a FUSEDMOE_CUDA_FUSED_TILE=$3; 44ef147 $P/fusedmoe_44ef147 FUSEDMOE_CUDA_FUSED_TILE=$3; 4f7d079 $P/fusedmoe_4f7d079 FUSEDMOE_CUDA_FUSED_TILE=$3; 98ea3af $P/fusedmoe_98ea3af FUSEDMOE_CUDA_FUSED_TILE=$3; cfe449d $P/fusedmoe_cfe449d FUSEDMOE_CUDA_FUSED_TILE=$3" \
  timeout 200 scripts/gpu_ab.sh $OUT/ab-bisect-$1.txt >/dev/null; scripts/ab_summary.py $OUT/ab-bisect-$1.txt main; }
ab olmoe-1b-7b 256 wg64_n256_ws
ab qwen3-30b-a3b 1024 wg128_n256_ws
# Then, if a commit is the step: ncu per kernel (scripts/gpu_profile.sh) of main and the commit before it at
# olmoe M=256 to see which kernel moved (align, GEMM1, GEMM2 or reduce).
