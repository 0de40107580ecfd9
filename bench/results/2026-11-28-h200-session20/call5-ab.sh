#!/usr/bin/env bash
# Session 20's fifth call: confirm the pipelined reduce (fusedmoe10) at prefill with 3 rounds (dev3 had
# olmoe M=16384 at x1.035 with a wide range), and the pair tile beside the table (tune: mixtral M=1024 x0.967).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
V="main $P/fusedmoe; pipelined $P/fusedmoe10; pair $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws_pair"
VARIANTS="$V" TOKENS=1024,4096,16384 ROUNDS=3 timeout 400 scripts/gpu_ab.sh $OUT/ab.txt > /dev/null 2>&1
echo ab rc $?
scripts/ab_summary.py $OUT/ab.txt main
