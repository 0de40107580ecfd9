#!/usr/bin/env bash
# `fusedmoe bench --device cuda:0` on the issue's presets, one table per preset, with the floor measured
# in the same run. Builds the CLI in build/gpu when it is not there (scripts/gpu_check.sh builds it too).
#
# Usage: scripts/gpu_bench.sh [out-dir]              (default build/gpu/bench)
#   PRESETS="qwen3-30b-a3b mixtral-8x7b deepseek-v3 olmoe-1b-7b"   (default: all four)
#   TOKENS=1,8,64,256,1024,4096,16384                              (default: the issue's M)
#   REPEATS=20   EXTRA="--backend cuda_fused"   PATHS="auto tiled" (FUSEDMOE_CUDA_FUSED_PATH per run)
#   PEERS=0: no PyTorch peers. By default, where python3 (or FUSEDMOE_PYTHON) imports torch, the first path's
#            runs add `--peer torch`: PyTorch's per-expert loop and torch._grouped_mm on the same shapes, as the
#            issue asks (~5 extra minutes for the four presets on an H100)
#   PREBUILT=.prebuilt: run the CLI scripts/pack_prebuilt.sh packed on another machine (no build)
#   TUNE=1: first `fusedmoe tune` each preset at TOKENS into $out/tune.json, then bench with
#           FUSEDMOE_TUNE_FILE pointing at it (the `auto` path then follows the table)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
out=${1:-build/gpu/bench}
presets=${PRESETS:-qwen3-30b-a3b mixtral-8x7b deepseek-v3 olmoe-1b-7b}
tokens=${TOKENS:-1,8,64,256,1024,4096,16384}
paths=${PATHS:-auto}
# The PyTorch peer's script, from this tree (a prebuilt CLI remembers the tree it was built in).
export FUSEDMOE_PEERS_DIR=${FUSEDMOE_PEERS_DIR:-$PWD/bench/peers}
. scripts/cli_setup.sh
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader | tee "$out/card.txt"
if [ -n "${PREBUILT:-}" ] && [ -f "$PREBUILT/commit.txt" ]; then
  echo "binary: $(cat "$PREBUILT/commit.txt")" | tee -a "$out/card.txt"  # this tree's HEAD may be another
else
  git rev-parse --short HEAD 2>/dev/null | tee -a "$out/card.txt"
fi
peers=
if [ "${PEERS:-auto}" != 0 ] && "${FUSEDMOE_PYTHON:-python3}" -c "import torch" >/dev/null 2>&1; then
  peers="--peer torch"
fi
status=0
if [ -n "${TUNE:-}" ]; then
  for preset in $presets; do
    echo "== tune $preset"
    "$cli" tune --device cuda:0 --preset "$preset" --tokens "$tokens" --repeats "${REPEATS:-20}" \
      --output "$out/tune.json" 2>&1 | tee "$out/tune-$preset.txt"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  done
  export FUSEDMOE_TUNE_FILE=$out/tune.json
fi
for path in $paths; do
  for preset in $presets; do
    echo "== $preset (FUSEDMOE_CUDA_FUSED_PATH=$path)"
    FUSEDMOE_CUDA_FUSED_PATH=$path "$cli" bench --device cuda:0 --preset "$preset" --tokens "$tokens" \
      --repeats "${REPEATS:-20}" $peers ${EXTRA:-} 2>&1 | tee "$out/$preset-$path.txt"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  done
  peers=  # the peers do not depend on the path: the first one only
done
exit $status
