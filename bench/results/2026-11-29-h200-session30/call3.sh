#!/usr/bin/env bash
# Session 30 call 3: (a) the workspace layout (block_runs moved after the tile counters: fusedmoe_layout) against
# main and f2b7f4a; (b) the same with PDL off (is the gap in the overlap?); (c) ncu instruction counts of
# GEMM1/GEMM2 at olmoe M=256 (f2b7f4a, main).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
ab() { PREBUILT=$P PRESETS="$1" TOKENS=$2 ROUNDS=3 REPEATS=50 \
  VARIANTS="main $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=$3; layout $P/fusedmoe_layout FUSEDMOE_CUDA_FUSED_TILE=$3; f2b7f4a $P/fusedmoe_f2b7f4a FUSEDMOE_CUDA_FUSED_TILE=$3; main_nopdl $P/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=$3 FUSEDMOE_CUDA_PDL=off; f2b7f4a_nopdl $P/fusedmoe_f2b7f4a FUSEDMOE_CUDA_FUSED_TILE=$3 FUSEDMOE_CUDA_PDL=off" \
  timeout 200 scripts/gpu_ab.sh $OUT/ab-$1.txt >/dev/null; scripts/ab_summary.py $OUT/ab-$1.txt main; }
ab olmoe-1b-7b 256 wg64_n256_ws
ab qwen3-30b-a3b 1024 wg128_n256_ws
ncu=$(command -v ncu || ls /usr/local/cuda*/bin/ncu | head -1)
m=gpu__time_duration.sum,smsp__inst_executed.sum,smsp__cycles_active.avg,sm__inst_executed_pipe_tensor_op_gmma.sum,smsp__average_warp_latency_per_inst_issued.ratio,l1tex__t_bytes.sum,sm__cycles_elapsed.avg.per_second
for b in f2b7f4a layout main; do
  bin=$P/fusedmoe_$b; [ $b = main ] && bin=$P/fusedmoe
  FUSEDMOE_CUDA_FUSED_TILE=wg64_n256_ws "$ncu" --clock-control none --kernel-name-base mangled --kernel-name regex:wgmma \
    --metrics $m --csv $bin bench --device cuda:0 --preset olmoe-1b-7b --tokens 256 --repeats 1 --backend cuda_fused \
    > $OUT/ncu-$b.csv 2>/dev/null
  echo "== olmoe M=256 $b: $m"
  python3 - $OUT/ncu-$b.csv $m <<'PY'
import csv, re, sys
rows, order = {}, []
ms = sys.argv[2].split(",")
lines = [l for l in open(sys.argv[1]) if l.startswith('"')]
for row in csv.DictReader(lines):
    key = (row["ID"], row["Kernel Name"])
    if key not in rows: order.append(key); rows[key] = {}
    rows[key][row["Metric Name"]] = row["Metric Value"]
for key in order[-2:]:
    print(f"{key[0]:>5} {key[1][18:40]:<22}" + "".join(f" {rows[key].get(x,'?'):>14}" for x in ms))
PY
done
