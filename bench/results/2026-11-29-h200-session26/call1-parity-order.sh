#!/usr/bin/env bash
# Prepared in session 25, any Hopper card (~8 min): does the pair tile lose to straddles? Branch
# `parity-order` (bench/results/2026-11-29-h200-session25/next-session-parity-order-landing.patch on main
# 99f08e2), packed here as fusedmoe_parity and fusedmoe_tests_parity: for the pair tiles the align lays out
# the experts with an even number of row blocks first, so fewer row-block pairs straddle two experts. A host
# model of uniform routing (docs/status.md item 0d) puts the share of pairs that multicast at deepseek-v3 M =
# 4096 / 6144 / 7168 / 8192 at 0.36 / 1.00 / 0.88 / 0.58 (parity order 0.62 / 1.00 / 0.99 / 0.80) and
# qwen3-30b-a3b M = 4096 / 8192 at 0.57 / 0.80 (0.81 / 0.88). On the H200 the pair tile was 1.6% ahead of
# wg128_n256_ws at deepseek M=6144 and 8.4% behind at 7168 (bench/results/2026-11-29-h200-session25.md
# section 4): if the straddles are the cost, the parity order closes that gap.
# (1) the branch's CUDA tests of cuda_fused (the align test in both orders, every forward case on the pair
# tile against fp64); (2) a same-call A/B at 200 replays, 2 rounds: main's wg128_n256_ws, main's pair, the
# branch's pair (parity order). Land the branch only where its pair beats both; then retune the pair buckets.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
timeout 200 "$P"/fusedmoe_tests_parity --gtest_filter='CudaFused*:*/CudaFused*' > $OUT/tests-parity.log 2>&1
echo "branch tests rc $?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $OUT/tests-parity.log | head -20
PREBUILT=$P PRESETS="deepseek-v3 qwen3-30b-a3b" TOKENS=4096,6144,7168,8192 ROUNDS=2 REPEATS=200 \
  VARIANTS="ws128 $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws; pair $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws_pair; parity $P/fusedmoe_parity FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws_pair" \
  timeout 360 scripts/gpu_ab.sh $OUT/ab.txt >/dev/null
scripts/ab_summary.py $OUT/ab.txt ws128
