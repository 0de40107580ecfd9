#!/usr/bin/env bash
# Session 33 call 3: cuda_batched at H = 100 (H % 8 = 4) on the wgmma tiles, before (1075973, fusedmoe_base)
# and after (78954f5) the fix: `run` behind local_batched, then `check` of every CUDA backend at that shape.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
for binary in fusedmoe_base fusedmoe; do
  echo "== $binary"
  for tokens in 21 160; do
    timeout 60 $P/$binary run --device cuda:0 --dispatch local_batched --backend cuda_batched --experts 8 --topk 2 \
      --hidden 100 --intermediate 40 --tokens $tokens --json 2>&1 | tail -2 | cut -c1-300
  done
done
timeout 120 $P/fusedmoe check --device cuda:0 --experts 8 --topk 2 --hidden 100 --intermediate 40 --tokens 160 2>&1 | tail -8
timeout 120 $P/fusedmoe check --device cuda:0 --dispatch local_batched --experts 8 --topk 2 --hidden 1020 \
  --intermediate 1024 --tokens 256 2>&1 | tail -4
