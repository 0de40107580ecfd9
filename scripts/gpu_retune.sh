#!/usr/bin/env bash
# Re-measures cuda_fused's built-in tune table for this GPU: `fusedmoe tune` on every bench preset at the
# issue's token counts (and, added by tune, the last M of each tile regime below the largest: up to 5 more per
# preset), then a same-call A/B of the built-in table against the new one (scripts/gpu_ab.sh),
# and the new table in the built-in tables' form (sorted keys, times rounded) to paste into
# src/backends/cuda_fused/builtin_tune_tables.cpp. Session 18 did this by hand on an H200 (~1.5 min of tuning,
# ~2 min of A/B): bench/results/2026-11-28-h200-session18.md section 4.
#
# Usage: scripts/gpu_retune.sh [out-dir]          (default build/gpu/retune)
#   PRESETS="qwen3-30b-a3b olmoe-1b-7b mixtral-8x7b deepseek-v3"   TOKENS=1,8,64,256,1024,4096,16384
#   ROUNDS=2 (the A/B's rounds)   PREBUILT=.prebuilt (a packed CLI, else build/gpu/bin/fusedmoe, built if missing)
#   REPEATS: replays per candidate in tune and per row in the A/B (tune's default 10, the A/B's 20); 200
#            measures compute-bound cells in the sustained, power-capped state (scripts/gpu_ab.sh says why)
# Writes $out/tune.json, $out/tune-<preset>.txt (every candidate's time), $out/summary.txt
# (scripts/tune_summary.py), $out/ab.txt, $out/builtin.json.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
out=${1:-build/gpu/retune}
case $out in /*) ;; *) out=$PWD/$out ;; esac
presets=${PRESETS:-qwen3-30b-a3b olmoe-1b-7b mixtral-8x7b deepseek-v3}
tokens=${TOKENS:-1,8,64,256,1024,4096,16384}
. scripts/cli_setup.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/card.txt"
rm -f "$out/tune.json"
for preset in $presets; do
  start=$(date +%s)
  "$cli" tune --device cuda:0 --preset "$preset" --tokens "$tokens" --output "$out/tune.json" --json \
    ${REPEATS:+--repeats "$REPEATS"} \
    >"$out/tune-$preset.txt" 2>&1 || { tail -5 "$out/tune-$preset.txt"; exit 2; }
  echo "tuned $preset in $(($(date +%s) - start)) s"
done
# Per cell: the built-in table's choice, the fastest one-tile and two-tile choice (times of this run).
python3 scripts/tune_summary.py "$out"/tune-*.txt | tee "$out/summary.txt"
PRESETS="$presets" TOKENS="$tokens" ROUNDS=${ROUNDS:-2} \
  VARIANTS="builtin $cli; tuned $cli FUSEDMOE_TUNE_FILE=$out/tune.json" scripts/gpu_ab.sh "$out/ab.txt" >/dev/null || exit 2
scripts/ab_summary.py "$out/ab.txt" builtin
python3 - "$out/tune.json" "$out/builtin.json" <<'PY'
import json, sys
table = json.load(open(sys.argv[1]))
for entry in table["entries"]:
    for bucket in entry["buckets"]:
        bucket["time_ms"] = round(bucket["time_ms"], 4)
text = json.dumps(table, indent=1, sort_keys=True)
open(sys.argv[2], "w").write(text + "\n")
for entry in table["entries"]:
    print(entry["experts"], entry["hidden"], entry["intermediate"],
          " ".join(f'{b["max_tokens"]}:{b["choice"]}' for b in entry["buckets"]))
PY
echo "paste $out/builtin.json into builtin_tune_tables.cpp where the A/B says the new choices win"
