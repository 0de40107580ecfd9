#!/usr/bin/env bash
# Prepared in session 24, any Hopper card (~3 min): session 24's multi-wave trigger for the one-tile wgmma
# GEMM1s (wg64_n128 / wg128_n256 at mixtral-8x7b and deepseek-v3 M = 64-256 in the H200 table): the probe
# binary (.prebuilt/fusedmoe_probe, built from next-session-wgmma-trigger-probe.patch on main) with
# FUSEDMOE_PROBE_WGMMA_TRIGGER=on lets GEMM1 trigger GEMM2 early where GEMM2's grid fills a wave; off, it is
# main. Same binary, same call, 3 rounds. Borderline: mixtral M=64's GEMM2 launches 288 blocks (256 with
# rows) against 264 slots of wg64_n128.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P PRESETS="mixtral-8x7b deepseek-v3" TOKENS=64,256 ROUNDS=3 \
  VARIANTS="off $P/fusedmoe_probe; on $P/fusedmoe_probe FUSEDMOE_PROBE_WGMMA_TRIGGER=on" \
  timeout 300 scripts/gpu_ab.sh $OUT/ab.txt >/dev/null
scripts/ab_summary.py $OUT/ab.txt off
grep -c passed $OUT/ab.txt
