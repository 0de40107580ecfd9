#!/usr/bin/env bash
# Session 21, last call: gpu_check on main's binaries (all CUDA tests, sanitizers, check/run --device cuda),
# then ncu per kernel of wg128_n256_ws against wg192_n192_ws where both tiles' blocks are full (qwen3
# balanced M=6144: 384 rows per expert = 3 x 128 = 2 x 192) and at olmoe M=1200 (uniform, ~150 rows).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P CPU_TESTS=0 timeout 300 scripts/gpu_check.sh build/gpu > $OUT/gpu_check.txt 2>&1
echo gpu_check rc $?; sed -n '/== summary/,$p' $OUT/gpu_check.txt
for tile in wg128_n256_ws wg192_n192_ws; do
  echo "== ncu $tile qwen3 balanced M=6144"
  FUSEDMOE_CUDA_FUSED_TILE=$tile PREBUILT=$P PRESET=qwen3-30b-a3b TOKENS=6144 EXTRA="--routing balanced" timeout 100 scripts/gpu_profile.sh $OUT/p-$tile-q 2>&1 | tail -5
  echo "== ncu $tile olmoe M=1200"
  FUSEDMOE_CUDA_FUSED_TILE=$tile PREBUILT=$P PRESET=olmoe-1b-7b TOKENS=1200 timeout 100 scripts/gpu_profile.sh $OUT/p-$tile-o 2>&1 | tail -5
done
rm -rf $OUT/p-*
