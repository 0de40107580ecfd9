#!/usr/bin/env bash
# Session 30 call 5: warp-state stalls of GEMM1 (wg64_n256_ws, olmoe M=256; wg128_n256_ws, qwen3 M=1024) in
# f2b7f4a, 44ef147 and main: which stall reason grew?
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh >/dev/null
ncu=$(command -v ncu || ls /usr/local/cuda*/bin/ncu | head -1)
for spec in "olmoe-1b-7b 256 wg64_n256_ws" "qwen3-30b-a3b 1024 wg128_n256_ws"; do
  set -- $spec
  for b in f2b7f4a 44ef147 main; do
    bin=$P/fusedmoe_$b; [ $b = main ] && bin=$P/fusedmoe
    FUSEDMOE_CUDA_FUSED_TILE=$3 "$ncu" --clock-control none --kernel-name-base mangled --kernel-name regex:gemm1_warp \
      --section WarpStateStats --section SchedulerStats --section SpeedOfLight --section LaunchStats --csv \
      $bin bench --device cuda:0 --preset $1 --tokens $2 --repeats 1 --backend cuda_fused > $OUT/st-$1-$b.csv 2>/dev/null
  done
  python3 - $1 $OUT/st-$1-f2b7f4a.csv $OUT/st-$1-44ef147.csv $OUT/st-$1-main.csv <<'PY'
import csv, sys
tabs = []
for path in sys.argv[2:]:
    lines = [l for l in open(path) if l.startswith('"')]
    rows = list(csv.DictReader(lines))
    last = rows[-1]["ID"]
    tabs.append({r["Metric Name"]: r["Metric Value"] for r in rows if r["ID"] == last})
print("==", sys.argv[1], "f2b7f4a / 44ef147 / main")
for k in tabs[0]:
    vals = [t.get(k, "?") for t in tabs]
    print(f"{k[:60]:<60} " + " ".join(f"{v:>14}" for v in vals))
PY
done
