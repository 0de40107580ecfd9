#!/usr/bin/env bash
# Per-kernel ncu times: base vs probe 15 (no MMA/epilogue) vs 255 (no loads either), qwen3 M=4096/16384.
set -u
cd "$(dirname "$0")/.."
scripts/unpack_prebuilt.sh .prebuilt >/dev/null
P=.prebuilt
chmod +x $P/fusedmoe_probe
export LD_LIBRARY_PATH=$PWD/$P:/usr/local/cuda/lib64
mkdir -p $P/probe_cli && cp $P/fusedmoe_probe $P/probe_cli/fusedmoe && ln -sf ../libOpenCL.so.1 ../libmpi_cxx.so.40 $P/probe_cli/ 2>/dev/null
for dnnl in $P/libdnnl.so*; do ln -sf ../$(basename $dnnl) $P/probe_cli/; done
for M in 4096 16384; do
  for v in base 15 255; do
    if [ $v = base ]; then cli=$P/fusedmoe; env=""; else cli=$P/probe_cli/fusedmoe; env="FUSEDMOE_PROBE=$v"; fi
    echo "== qwen3 M=$M $v"
    env $env /usr/local/cuda/bin/ncu --kernel-name-base mangled --kernel-name regex:fusedmoe \
      --metrics gpu__time_duration.sum,launch__grid_size --csv \
      $cli bench --device cuda:0 --preset qwen3-30b-a3b --tokens $M --repeats 1 > $OUT/ncu-$M-$v.csv 2>$OUT/ncu-$M-$v.log
    python3 - $OUT/ncu-$M-$v.csv <<'PY'
import csv, re, sys
rows = {}; order = []
lines = [l for l in open(sys.argv[1]) if l.startswith('"')]
for row in csv.DictReader(lines):
    key = (row["ID"], row["Kernel Name"])
    if key not in rows: order.append(key); rows[key] = {}
    rows[key][row["Metric Name"]] = row["Metric Value"] + " " + row.get("Metric Unit", "")
for key in order[-6:]:
    print(f"{key[0]:>5} {re.sub(r'^_ZN8fusedmoe', '', key[1])[:70]:<70} " + " | ".join(rows[key].values()))
PY
  done
done
