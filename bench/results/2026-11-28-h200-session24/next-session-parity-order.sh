#!/usr/bin/env bash
# Prepared in session 24, any Hopper card (~5 min); run it after next-session-h200.sh if the pair tile won
# somewhere at 200 replays. The probe binary .prebuilt/fusedmoe_parity (next-session-parity-order-probe.patch
# on main) lays out, under FUSEDMOE_PROBE_PARITY=on and the pair tile, the experts with an even number of row
# blocks first, so fewer row-block pairs straddle two experts (host model, docs/status.md item 0d: multicast
# pairs qwen3 M=4096 0.63 -> 0.80, olmoe M=1024 0.35 -> 0.59, deepseek M=4096 0.34 -> 0.63, mixtral M=4096
# 0.83 -> 0.91). (1) correctness of the whole output against fp64 (`fusedmoe check`, shapes with 1-3 row
# blocks per expert); (2) a same-call A/B at 200 replays: the table, the pair tile, the pair tile in parity
# order.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
for args in "--preset olmoe-1b-7b --tokens 2048 --hidden 512 --intermediate 256" \
            "--preset qwen3-30b-a3b --tokens 3001 --hidden 512 --intermediate 384" \
            "--preset deepseek-v3 --tokens 4096 --hidden 512 --intermediate 256"; do
  echo "== check $args"
  FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws_pair FUSEDMOE_PROBE_PARITY=on timeout 120 \
    "$P"/fusedmoe_parity check --device cuda:0 $args 2>&1 | grep -E "cuda_fused|FAIL|rror" | head -5
done
PREBUILT=$P PRESETS="qwen3-30b-a3b olmoe-1b-7b mixtral-8x7b deepseek-v3" TOKENS=1024,4096 ROUNDS=2 REPEATS=200 \
  VARIANTS="table $P/fusedmoe_parity; pair $P/fusedmoe_parity FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws_pair; parity $P/fusedmoe_parity FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws_pair FUSEDMOE_PROBE_PARITY=on" \
  timeout 420 scripts/gpu_ab.sh $OUT/ab.txt >/dev/null
scripts/ab_summary.py $OUT/ab.txt table
