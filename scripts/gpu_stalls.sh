#!/usr/bin/env bash
# Where one cuda_fused kernel's warps wait: Nsight Compute's warp-stall sampling per SASS instruction
# (SourceCounters) on one launch inside `fusedmoe bench`, at the card's own clocks, summarised by
# scripts/stall_summary.py. Builds the CLI in build/gpu when it is not there (as scripts/gpu_profile.sh).
#
# Usage: scripts/gpu_stalls.sh [out-dir]          (default build/gpu/stalls)
#   KERNEL=gemm1_warp   a regex of the kernel's name (gemm1_warp, gemm2_warp, reduce_topk, align_scatter ...)
#   PRESET=qwen3-30b-a3b  TOKENS=16384  EXTRA="..." (more `fusedmoe bench` flags)
#   PREBUILT=.prebuilt: the CLI scripts/pack_prebuilt.sh packed on another machine (no build)
# Writes $out/<kernel>.ncu-rep, <kernel>_sass.csv.gz (per instruction) and <kernel>_details.txt.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
out=${1:-build/gpu/stalls}
kernel=${KERNEL:-gemm1_warp}
preset=${PRESET:-qwen3-30b-a3b}
tokens=${TOKENS:-16384}
. scripts/ncu_cli_setup.sh gpu_stalls
name=$(printf %s "$kernel" | tr -c 'A-Za-z0-9_' '_')
# --launch-skip 2: past the checked run's launch of the kernel, into the timed forwards.
"$ncu" --clock-control none --section SourceCounters --section WarpStateStats --kernel-name "regex:$kernel" \
  --launch-skip 2 --launch-count 1 -f -o "$out/$name" \
  "$cli" bench --device cuda:0 --preset "$preset" --tokens "$tokens" --repeats 1 ${EXTRA:-} >"$out/$name.log" 2>&1 ||
  { tail -20 "$out/$name.log"; exit 2; }
"$ncu" --import "$out/$name.ncu-rep" --page details --print-details all >"$out/${name}_details.txt" 2>&1
"$ncu" --import "$out/$name.ncu-rep" --page source --csv --print-source sass >"$out/${name}_sass.csv" 2>&1 ||
  { tail -5 "$out/${name}_sass.csv"; exit 2; }
gzip -f "$out/${name}_sass.csv"
grep -E "Warp Cycles Per Issued|Stall (Long|Wait|Barrier|Short|MIO|GMMA)" "$out/${name}_details.txt" | head -8
scripts/stall_summary.py "$out/${name}_sass.csv.gz"
