#!/usr/bin/env bash
# Session 31 call 6: where the heuristic's regimes should end. (a) 40 / 48 / 56 rows per expert: the one-group
# wg64_n256_ws against the two-group wg128_n256_ws (call 5: the heuristic's wg64_n256_ws lost 8-17% at 64 rows
# on every preset). (b) 12 / 16 rows: the heuristic (streaming tiles up to 16) against m32 and wg64_n128.
set -u
cd "$(dirname "$0")/../../.."
. scripts/prebuilt_env.sh
ab() {  # ab <file> <preset> <tokens> <variants>
  PREBUILT=$P PRESETS="$2" TOKENS=$3 ROUNDS=2 VARIANTS="$4" timeout 100 scripts/gpu_ab.sh $OUT/$1-$2.txt >/dev/null
  scripts/ab_summary.py $OUT/$1-$2.txt table | tail -n +3
}
big="table $P/fusedmoe; ws $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg64_n256_ws; w128 $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws"
small="table $P/fusedmoe; heuristic $P/fusedmoe FUSEDMOE_TUNE_BUILTIN=off; m32 $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=m32; n128 $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg64_n128"
echo "table ws w128"
ab rows40-56 qwen3-30b-a3b 640,768,896 "$big"
ab rows40-56 olmoe-1b-7b 320,384,448 "$big"
ab rows40-56 mixtral-8x7b 160,192,224 "$big"
echo "table heuristic m32 n128"
ab rows12-16 qwen3-30b-a3b 192,256 "$small"
ab rows12-16 olmoe-1b-7b 96,128 "$small"
ab rows12-16 mixtral-8x7b 48,64 "$small"
ab rows40-56 deepseek-v3 1280,1536 "$big"
