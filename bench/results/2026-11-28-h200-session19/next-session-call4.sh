#!/usr/bin/env bash
# Session 20's fourth call (prepared in session 19; ~3 minutes, any Hopper card): settle the padding
# contradiction (docs/status.md item 0b). A 64-row one-consumer tile costs ~0.6 of a 128-row tile in tune,
# yet idling the second consumer on half-empty row blocks (the skip patch) gained only ~1%. ncu per kernel
# (time, tensor-pipe activity, DRAM, L2) at qwen3 and deepseek M=4096 with the skip off, the skip on, and
# wg64_n256_ws forced. fusedmoe11 = main + skip-idle-half-v2 (FUSEDMOE_CUDA_FUSED_SKIP_IDLE_HALF=on|off|gemm1;
# bench/results/2026-11-28-h200-session19/skip-idle-half-v2-rebased-untested.patch; its bit test passed in
# session 19's call 2 before the rebase).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
ncu=$(command -v ncu || ls /usr/local/cuda*/bin/ncu | head -1)
M="gpu__time_duration.sum,sm__pipe_tensor_op_hmma_type_hmma_hgmma_qgmma_cycles_active.avg.pct_of_peak_sustained_elapsed,dram__throughput.avg.pct_of_peak_sustained_elapsed,lts__throughput.avg.pct_of_peak_sustained_elapsed"
for preset in qwen3-30b-a3b deepseek-v3; do
  for variant in "off FUSEDMOE_CUDA_FUSED_SKIP_IDLE_HALF=off" "on FUSEDMOE_CUDA_FUSED_SKIP_IDLE_HALF=on" \
                 "wg64 FUSEDMOE_CUDA_FUSED_SKIP_IDLE_HALF=off FUSEDMOE_CUDA_FUSED_TILE=wg64_n256_ws"; do
    set -- $variant
    name=$1; shift
    env "$@" timeout 120 $ncu --kernel-name regex:warp_specialized --metrics $M --csv \
      $P/fusedmoe11 bench --device cuda:0 --preset $preset --tokens 4096 --repeats 1 > $OUT/ncu-$preset-$name.csv 2>/dev/null
    echo "== $preset M=4096 $name rc $?"
    python3 - $OUT/ncu-$preset-$name.csv <<'PY'
import csv, sys
rows, order = {}, []
lines = [l for l in open(sys.argv[1]) if l.startswith('"')]
for r in csv.DictReader(lines):
    key = (r["ID"], r["Kernel Name"][:40])
    if key not in rows: order.append(key); rows[key] = {}
    rows[key][r["Metric Name"].split(".")[0][:32]] = r["Metric Value"]
for key in order[-2:]:
    print(key[0], key[1], rows[key])
PY
  done
done
