#!/usr/bin/env bash
# Session 30 call 2: which kernel moved between f2b7f4a and 44ef147 (olmoe M=256 wg64_n256_ws, qwen3 M=1024
# wg128_n256_ws)? ncu per kernel on f2b7f4a, 44ef147 and main, card's own clocks.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
ncu=$(command -v ncu || ls /usr/local/cuda*/bin/ncu | head -1)
m=gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum,lts__t_bytes.sum,sm__cycles_elapsed.avg.per_second,launch__registers_per_thread,launch__grid_size
for spec in "olmoe-1b-7b 256 wg64_n256_ws" "qwen3-30b-a3b 1024 wg128_n256_ws"; do
  set -- $spec
  for b in f2b7f4a 44ef147 main; do
    bin=$P/fusedmoe_$b; [ $b = main ] && bin=$P/fusedmoe
    FUSEDMOE_CUDA_FUSED_TILE=$3 "$ncu" --clock-control none --kernel-name-base mangled --kernel-name regex:fusedmoe \
      --metrics $m --csv $bin bench --device cuda:0 --preset $1 --tokens $2 --repeats 1 --backend cuda_fused \
      > $OUT/ncu-$1-$b.csv 2>$OUT/ncu-$1-$b.log
    echo "== $1 M=$2 $3 $b"
    python3 - $OUT/ncu-$1-$b.csv $m <<'PY'
import csv, re, sys
rows, order = {}, []
ms = sys.argv[2].split(",")
lines = [l for l in open(sys.argv[1]) if l.startswith('"')]
for row in csv.DictReader(lines):
    key = (row["ID"], row["Kernel Name"])
    if key not in rows: order.append(key); rows[key] = {}
    rows[key][row["Metric Name"]] = row["Metric Value"]
for key in order[-5:]:
    name = re.sub(r"^_ZN8fusedmoe", "", key[1])[:50]
    print(f"{key[0]:>5} {name:<50}" + "".join(f" {rows[key].get(x,'?'):>14}" for x in ms))
PY
  done
done
