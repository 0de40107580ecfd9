#!/usr/bin/env bash
# Per-kernel time of one cuda_fused forward under Nsight Compute: where a decode (or prefill) forward spends
# its time, kernel by kernel (the CUDA-graph time of `fusedmoe bench` minus their sum = launch gaps).
# Builds the CLI in build/gpu when it is not there (scripts/gpu_check.sh builds it too).
#
# Usage: scripts/gpu_profile.sh [out-dir]          (default build/gpu/profile)
#   PRESET=qwen3-30b-a3b  TOKENS=1  EXTRA="..." (more `fusedmoe bench` flags, e.g. --backend cuda_monolithic)
#   CLOCKS=base: ncu's default locked base clocks (comparable between runs); default: the card's own clocks
#   METRICS=a,b,c: ncu metrics to collect (default: time, DRAM % of peak, grid size); printed in that order
#   PREBUILT=.prebuilt: the CLI scripts/pack_prebuilt.sh packed on another machine (no build)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
out=${1:-build/gpu/profile}
preset=${PRESET:-qwen3-30b-a3b}
tokens=${TOKENS:-1}
metrics=${METRICS:-gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,launch__grid_size}
clocks=none
[ "${CLOCKS:-}" = base ] && clocks=base
. scripts/ncu_cli_setup.sh gpu_profile
# Only fusedmoe's own kernels (their mangled names carry the namespace), not the floor probes (cuBLAS, copies).
# --repeats 1: the checked run, the warm-up and one timed replay are profiled, each kernel on its own.
"$ncu" --clock-control "$clocks" --kernel-name-base mangled --kernel-name regex:fusedmoe \
  --metrics "$metrics" \
  --csv "$cli" bench --device cuda:0 --preset "$preset" --tokens "$tokens" --repeats 1 ${EXTRA:-} \
  >"$out/ncu-$preset-M$tokens.csv" 2>"$out/ncu-$preset-M$tokens.log"
status=$?
# Kernel and each metric (with ncu's unit): the last forward's kernels are the last lines.
python3 - "$out/ncu-$preset-M$tokens.csv" "$metrics" <<'PY'
import csv, re, sys
rows = {}
order = []
metrics = sys.argv[2].split(",")
with open(sys.argv[1]) as f:
    lines = [l for l in f if l.startswith('"')]
for row in csv.DictReader(lines):
    key = (row["ID"], row["Kernel Name"])
    if key not in rows:
        order.append(key)
        rows[key] = {}
    rows[key][row["Metric Name"]] = (row["Metric Value"] + " " + row.get("Metric Unit", "")).strip()
print("   id kernel" + "".join(f" | {m}" for m in metrics))
for key in order[-12:]:
    name = re.sub(r"^_ZN8fusedmoe", "", key[1])[:60]
    print(f"{key[0]:>5} {name:<60}" + "".join(f" | {rows[key].get(m, '?'):>14}" for m in metrics))
PY
exit $status
