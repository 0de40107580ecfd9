#!/usr/bin/env bash
# Session 20's fourth call (prepared in session 19; ~7 minutes, any Hopper card): half-empty row blocks
# (docs/status.md item 0b). A 64-row one-consumer tile costs ~0.6 of a 128-row tile in tune, yet idling the
# second consumer on blocks whose rows 64-127 are padding (the skip) gained only ~1%. fusedmoe12 /
# fusedmoe_tests12 = main + split-idle-half-untested.patch: the skip (session 18's v2, rebased) and, new, the
# split (both consumers on rows 0-63, half the columns each; SplitHalfShape). The switch is
# FUSEDMOE_CUDA_FUSED_SKIP_IDLE_HALF=on|off|gemm1|split|split1 (split1: split GEMM1, skip GEMM2; the
# patch's default: on). A helper reviewed the patch (no bug found; its points are fixed: split1 skips GEMM2,
# the skip is off by default in the launch structs so cuda_batched keeps its path, the test has a mixed case;
# ptxas reports no wgmma serialisation).
# (1) bit tests, bounded (a consumer that disagrees with the producer hangs), (2) ncu per GEMM at qwen3 and
# deepseek M=4096: off / on / split / wg64_n256_ws, (3) A/B main / off / on / split / split1.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
timeout 200 $P/fusedmoe_tests12 --gtest_filter='CudaFusedTiles.Split*:CudaFusedTiles.Skipped*:CudaFusedTiles.Handover*:CudaFusedSwitches.*' > $OUT/test.txt 2>&1
rc=$?; echo tests rc $rc; grep -E "^\[  (PASSED|FAILED)|Failure" $OUT/test.txt | head -20
[ $rc -eq 0 ] || { tail -30 $OUT/test.txt; exit 0; }
ncu=$(command -v ncu || ls /usr/local/cuda*/bin/ncu | head -1)
M="gpu__time_duration.sum,sm__pipe_tensor_op_hmma_type_hmma_hgmma_qgmma_cycles_active.avg.pct_of_peak_sustained_elapsed,dram__throughput.avg.pct_of_peak_sustained_elapsed,lts__throughput.avg.pct_of_peak_sustained_elapsed"
for preset in qwen3-30b-a3b deepseek-v3; do
  for variant in "off FUSEDMOE_CUDA_FUSED_SKIP_IDLE_HALF=off" "on FUSEDMOE_CUDA_FUSED_SKIP_IDLE_HALF=on" \
                 "split FUSEDMOE_CUDA_FUSED_SKIP_IDLE_HALF=split" \
                 "wg64 FUSEDMOE_CUDA_FUSED_SKIP_IDLE_HALF=off FUSEDMOE_CUDA_FUSED_TILE=wg64_n256_ws"; do
    set -- $variant
    name=$1; shift
    env "$@" timeout 100 $ncu --kernel-name regex:warp_specialized --metrics $M --csv \
      $P/fusedmoe12 bench --device cuda:0 --preset $preset --tokens 4096 --repeats 1 > $OUT/ncu-$preset-$name.csv 2>/dev/null
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
S="$P/fusedmoe12 FUSEDMOE_CUDA_FUSED_SKIP_IDLE_HALF"
V="main $P/fusedmoe; off $S=off; on $S=on; split $S=split; split1 $S=split1"
VARIANTS="$V" TOKENS=1024,4096,16384 ROUNDS=1 timeout 280 scripts/gpu_ab.sh $OUT/ab.txt > /dev/null 2>&1
echo ab rc $?
scripts/ab_summary.py $OUT/ab.txt main
