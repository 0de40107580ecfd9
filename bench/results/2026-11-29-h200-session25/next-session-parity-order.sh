#!/usr/bin/env bash
# Prepared in session 25, any Hopper card (~6 min): does the pair tile lose to straddles? The probe binary
# .prebuilt/fusedmoe_parity (bench/results/2026-11-28-h200-session24/next-session-parity-order-probe.patch on
# session 25's main) lays out, under FUSEDMOE_PROBE_PARITY=on and the pair tile, the experts with an even
# number of row blocks first, so fewer row-block pairs straddle two experts. A host model of uniform routing
# (python, docs/status.md item 0d) puts the share of pairs that multicast at deepseek-v3 M = 6144 / 7168 /
# 8192 at 1.00 / 0.88 / 0.58 (parity order: 1.00 / 0.99 / 0.80) and qwen3-30b-a3b M=4096 at 0.57 (0.81). On
# the H200 the pair tile was 1.6% ahead of wg128_n256_ws at deepseek M=6144 and 8.4% behind at 7168
# (bench/results/2026-11-29-h200-session25.md section 4): if the straddles are the cost, the parity order
# closes that gap. (1) `fusedmoe check` of the whole output against fp64 with the parity order on (shapes
# with 1-3 row blocks per expert); (2) a same-call A/B at 200 replays, 2 rounds.
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
PREBUILT=$P PRESETS="deepseek-v3 qwen3-30b-a3b" TOKENS=4096,6144,7168,8192 ROUNDS=2 REPEATS=200 \
  VARIANTS="table $P/fusedmoe_parity; ws128 $P/fusedmoe_parity FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws; pair $P/fusedmoe_parity FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws_pair; parity $P/fusedmoe_parity FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws_pair FUSEDMOE_PROBE_PARITY=on" \
  timeout 480 scripts/gpu_ab.sh $OUT/ab.txt >/dev/null
scripts/ab_summary.py $OUT/ab.txt table
