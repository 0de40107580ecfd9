#!/usr/bin/env bash
# Session 23, call 3 (one GPU): the expert raster (kernels/raster.hpp). gpu_check on the new binaries, then a
# same-call A/B against the fixed groups (FUSEDMOE_CUDA_FUSED_RASTER=fixed), then ncu's DRAM bytes per GEMM
# for both at mixtral M=4096 and deepseek M=16384.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P CPU_TESTS=0 timeout 240 scripts/gpu_check.sh build/gpu > $OUT/check.log 2>&1
echo "gpu_check rc $?"; grep -E "tests? (passed|failed)|FAILED|ERROR SUMMARY|hazard|check --device" $OUT/check.log | head -20
VARIANTS="experts $P/fusedmoe; fixed $P/fusedmoe FUSEDMOE_CUDA_FUSED_RASTER=fixed" ROUNDS=2 REPEATS=20 \
  TOKENS=1024,4096,16384 timeout 330 scripts/gpu_ab.sh $OUT/ab.txt > /dev/null 2>&1
echo "ab rc $?"; python3 scripts/ab_summary.py $OUT/ab.txt fixed 2>&1 | tail -20
ncu=$(command -v ncu || ls /usr/local/cuda*/bin/ncu | head -1)
M=gpu__time_duration.sum,dram__bytes_read.sum,lts__t_sector_hit_rate.pct,sm__cycles_elapsed.avg.per_second
for cell in "mixtral-8x7b 4096" "deepseek-v3 16384"; do
  set -- $cell
  for raster in experts fixed; do
    FUSEDMOE_CUDA_FUSED_RASTER=$raster timeout 60 "$ncu" --clock-control none --kernel-name-base demangled \
      --kernel-name regex:warp_specialized --metrics $M --csv "$P"/fusedmoe bench --device cuda:0 --preset $1 \
      --tokens $2 --repeats 1 > $OUT/ncu-$1-$raster.csv 2>/dev/null
    python3 - $OUT/ncu-$1-$raster.csv "$M" "$1 $raster" <<'PY'
import csv, sys, collections
ms=sys.argv[2].split(',')
lines=[l for l in open(sys.argv[1]) if l.startswith('"')]
rows=collections.OrderedDict()
for r in csv.DictReader(lines):
  rows.setdefault((r["ID"], r["Kernel Name"][:40]), {})[r["Metric Name"]]=r["Metric Value"]
for k in list(rows)[-2:]:
  print(sys.argv[3], k[1], " | ".join(rows[k].get(m,'?') for m in ms))
PY
  done
done
