#!/usr/bin/env bash
# Session 27, call 1 (any Hopper card, ~9 min). The working tree is branch `candidate`: main + session 26's
# two unrun branches (scan-helper: cuda_common/kernels/block_scan.cuh, cuda::grid_fills_a_wave, tests of the
# scans over two chunks of experts; skip-padding-pairs: the pair tiles' all-padding warpgroups skip their
# MMAs, raster.hpp's padding_warpgroups). .prebuilt holds main's binaries.
# (1) gpu_check builds the candidate here (sm_90a) and runs every CUDA test + memcheck + racecheck;
# (2) same-call A/B candidate vs main at the pair tile's cells (deepseek-v3 M = 7168 / 8192, mixtral-8x7b
#     M = 8192) and one single-CTA cell (deepseek M=4096, wg192: must stay level), 200 replays, 2 rounds.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
# The same configure as gpu_check's, built with -k first so one call shows every compile error.
cmake -S . -B build/gpu -DCMAKE_BUILD_TYPE=Release -DFUSEDMOE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a \
  -DCMAKE_CUDA_COMPILER="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)" >/dev/null 2>&1
cmake --build build/gpu -j 16 --target fusedmoe_tests fusedmoe_cli -- -k > $OUT/build.log 2>&1
rc=$?; echo "build rc $rc"; grep -E "error|warning" $OUT/build.log | sort -u | head -30
[ $rc -eq 0 ] || exit 1
CPU_TESTS=0 timeout 360 scripts/gpu_check.sh build/gpu > $OUT/check.log 2>&1
echo "gpu_check rc $?"
sed -n '/== summary/,$p' $OUT/check.log
grep -E '^\[  FAILED  \] [A-Za-z]' $OUT/check.log | sort -u | head -20
[ -x build/gpu/bin/fusedmoe ] || exit 1
V="main $P/fusedmoe; cand build/gpu/bin/fusedmoe"
PRESETS=deepseek-v3 TOKENS=4096,7168,8192 ROUNDS=2 REPEATS=200 VARIANTS="$V" \
  timeout 110 scripts/gpu_ab.sh $OUT/ab-deepseek.txt >/dev/null
scripts/ab_summary.py $OUT/ab-deepseek.txt main
PRESETS=mixtral-8x7b TOKENS=8192 ROUNDS=2 REPEATS=200 VARIANTS="$V" \
  timeout 50 scripts/gpu_ab.sh $OUT/ab-mixtral.txt >/dev/null
scripts/ab_summary.py $OUT/ab-mixtral.txt main
