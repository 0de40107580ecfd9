#!/usr/bin/env bash
# Session 23, call 2 (one GPU): do fusedmoe's prefill GEMMs run at a lower SM clock than cuBLAS's (power cap)?
# ncu at the card's own clocks: cuBLAS's 8192^3 floor GEMM and cuda_fused's kernels, three compute-bound cells.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
ncu=$(command -v ncu || ls /usr/local/cuda*/bin/ncu | head -1)
M=gpu__time_duration.sum,sm__cycles_elapsed.avg.per_second,sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_elapsed,lts__t_bytes.sum,dram__bytes_read.sum,sm__throughput.avg.pct_of_peak_sustained_elapsed
for cell in "mixtral-8x7b 4096" "qwen3-30b-a3b 16384" "deepseek-v3 16384"; do
  set -- $cell
  echo "== $1 M=$2"
  timeout 150 "$ncu" --clock-control none --kernel-name-base demangled --kernel-name "regex:nvjet|xmma|gemm|reduce" \
    --metrics $M --csv "$P"/fusedmoe bench --device cuda:0 --preset $1 --tokens $2 --repeats 1 > $OUT/ncu-$1.csv 2>$OUT/ncu-$1.log
  echo "rc $?"
  python3 - $OUT/ncu-$1.csv "$M" <<'PY'
import csv, sys, collections
ms=sys.argv[2].split(',')
lines=[l for l in open(sys.argv[1]) if l.startswith('"')]
rows=collections.OrderedDict()
for r in csv.DictReader(lines):
  rows.setdefault((r["ID"], r["Kernel Name"][:70]), {})[r["Metric Name"]]=r["Metric Value"]
keys=list(rows)
print(len(keys), "kernels")
# first few (cuBLAS floor) and the last 4
for k in keys[:3]+keys[-4:]:
  v=rows[k]; print(k[0], k[1][:70], " | ".join(v.get(m,'?') for m in ms))
PY
done
