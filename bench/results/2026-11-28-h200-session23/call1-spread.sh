#!/usr/bin/env bash
# Session 23, call 1 (one GPU): why mixtral-8x7b M=4096 spreads 12% between processes.
# (a) six processes with the SM clock / power logged every 20 ms while each runs;
# (b) ncu (card clocks) of one forward's kernels in four processes: L2 hit rate, DRAM bytes, clock.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
for i in 1 2 3 4 5 6; do
  nvidia-smi --query-gpu=clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_throttle_reasons.active --format=csv,noheader,nounits -lms 20 > $OUT/smi-$i.csv 2>/dev/null &
  smi=$!
  timeout 60 "$P"/fusedmoe bench --device cuda:0 --preset mixtral-8x7b --tokens 4096 --repeats 50 2>&1 | grep cuda_fused | sed "s/^/p$i /"
  kill $smi; wait $smi 2>/dev/null
  python3 - $OUT/smi-$i.csv <<'PY'
import sys, statistics as st
rows=[l.strip().split(', ') for l in open(sys.argv[1]) if l.strip()]
busy=[r for r in rows if float(r[2])>300]
if busy:
  c=[float(r[0]) for r in busy]; p=[float(r[2]) for r in busy]
  print(f"   busy samples {len(busy)}: sm clock median {st.median(c):.0f} min {min(c):.0f} max {max(c):.0f}; power median {st.median(p):.0f} W; temp {busy[-1][3]}; throttle {sorted(set(r[4] for r in busy))}")
else: print("   no busy samples", len(rows))
PY
done
M=gpu__time_duration.sum,lts__t_sector_hit_rate.pct,dram__bytes_read.sum,dram__bytes_write.sum,sm__cycles_elapsed.avg.per_second
for i in 1 2 3 4; do
  echo "== ncu process $i"
  PREBUILT=$P PRESET=mixtral-8x7b TOKENS=4096 METRICS=$M timeout 120 scripts/gpu_profile.sh $OUT/ncu$i 2>&1 | tail -5
done
