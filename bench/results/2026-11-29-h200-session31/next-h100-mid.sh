#!/usr/bin/env bash
# Prepared in session 31 for an H100 (~6 min; copy into .prebuilt/ beside a pack of 36c46f2 or later). The
# heuristic's regimes at 16 / 32 / 48 / 56 / 64 rows per expert were set from H200 measurements (results
# section 5); the H100 tables (session 15, before 042ac3e made the warp-specialised tiles 2-5% faster) took
# 128-row tiles from 17-33 rows. Same-call A/B, 2 rounds: the built-in H100 table and the heuristic alone
# (FUSEDMOE_TUNE_BUILTIN=off) against forced wg64_n256_ws, wg128_n256_ws and wg64_n128. Change the heuristic
# only where one tile wins on most presets in both rounds; paste H100 buckets where a tile beats the table.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
variants="table $P/fusedmoe; heuristic $P/fusedmoe FUSEDMOE_TUNE_BUILTIN=off; ws $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg64_n256_ws; w128 $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws; n128 $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg64_n128"
ab() {  # ab <preset> <tokens: 16, 32, 48, 56, 64 rows per expert>
  PREBUILT=$P PRESETS="$1" TOKENS=$2 ROUNDS=2 VARIANTS="$variants" timeout 110 scripts/gpu_ab.sh $OUT/ab-mid-$1.txt >/dev/null
  scripts/ab_summary.py $OUT/ab-mid-$1.txt table | tail -n +2
}
ab qwen3-30b-a3b 256,512,768,896,1024
ab olmoe-1b-7b 128,256,384,448,512
ab mixtral-8x7b 64,128,192,224,256
ab deepseek-v3 512,1024,1536,1792,2048
