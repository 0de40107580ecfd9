#!/usr/bin/env bash
# Session 19 call 3: where cuda_fused's prefill GEMMs stand against CUTLASS's grouped GEMM on the same
# problems: ncu per-kernel times of one forward of each backend (qwen3 M=4096/16384, deepseek M=16384,
# mixtral M=1024), and the forward times of both (bench).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
ncu=$(command -v ncu || ls /usr/local/cuda*/bin/ncu | head -1)
$ncu --query-metrics --chip gh100 > $OUT/metrics.txt 2>&1; grep -i -E "gmma|tensor_op" $OUT/metrics.txt | head -20
M="gpu__time_duration.sum,sm__throughput.avg.pct_of_peak_sustained_elapsed,dram__throughput.avg.pct_of_peak_sustained_elapsed,launch__grid_size"
for cell in "qwen3-30b-a3b 4096" "qwen3-30b-a3b 16384" "deepseek-v3 16384" "mixtral-8x7b 1024"; do
  set -- $cell
  for b in cuda_fused cuda_cutlass_grouped; do
    timeout 120 $ncu --kernel-name-base mangled --kernel-name regex:'fusedmoe|cutlass' --metrics $M --csv \
      $P/fusedmoe bench --device cuda:0 --preset $1 --tokens $2 --repeats 1 --backend $b > $OUT/ncu-$1-$2-$b.csv 2>/dev/null
    echo "== $1 M=$2 $b rc $?"
    python3 - $OUT/ncu-$1-$2-$b.csv <<'PY'
import csv, re, sys
rows, order = {}, []
with open(sys.argv[1]) as f:
    lines = [l for l in f if l.startswith('"')]
for row in csv.DictReader(lines):
    key = (row["ID"], row["Kernel Name"])
    if key not in rows:
        order.append(key); rows[key] = {}
    rows[key][row["Metric Name"]] = row["Metric Value"]
for key in order[-7:]:
    r = rows[key]
    print(f"{key[0]:>4} {key[1][:70]:<70} {r.get('gpu__time_duration.sum','?'):>10} sm {r.get('sm__throughput.avg.pct_of_peak_sustained_elapsed','?'):>6} dram {r.get('dram__throughput.avg.pct_of_peak_sustained_elapsed','?'):>6} grid {r.get('launch__grid_size','?')}")
PY
  done
done
timeout 200 $P/fusedmoe bench --device cuda:0 --preset qwen3-30b-a3b --preset mixtral-8x7b --preset deepseek-v3 --preset olmoe-1b-7b --tokens 1024,4096,16384 --backend cuda_fused --backend cuda_cutlass_grouped --repeats 5 > $OUT/bench.txt 2>&1
echo bench rc $?; cat $OUT/bench.txt | tail -40
