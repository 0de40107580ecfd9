#!/usr/bin/env bash
# Same-call A/B timing of cuda_fused variants on a GPU: rounds of `fusedmoe bench`, each round running every
# variant once per preset in turn (alternating, so drift between calls and clock changes hit all variants
# alike). Compute-bound cells move 4-6% between GPU calls: compare only rows of one run of this script.
# Compute-bound cells also move within a call: after each process's pause the card runs above its sustained
# power for some tens of replays, then throttles under the power cap, so a median of 20 replays lands
# anywhere between the two (H200 mixtral-8x7b M=4096: 4.10-4.78 ms; bench/results/2026-11-28-h200-session24.md
# section 3). REPEATS=200 settles every row at the sustained state (4.78-4.80 ms): use it for prefill cells.
#
# Usage: VARIANTS='base .prebuilt/fusedmoe_base; pair .prebuilt/fusedmoe FUSEDMOE_CUDA_FUSED_TILE=x' \
#        PREBUILT=.prebuilt scripts/gpu_ab.sh out.txt
#   VARIANTS   ';'-separated "label program [VAR=value ...]" (program: a fusedmoe CLI, relative to the
#              repository root)
#   PRESETS="qwen3-30b-a3b olmoe-1b-7b mixtral-8x7b deepseek-v3"   TOKENS=1024,4096,16384
#   ROUNDS=2   REPEATS=20   EXTRA= (more `fusedmoe bench` flags; --backend cuda_fused is always passed)
# Output: one line per result row, "r<round> <label> <bench row>", into out.txt (and stdout);
# scripts/ab_summary.py out.txt [baseline label] prints the medians and ratios per preset and M.
set -uo pipefail
out=${1:?usage: scripts/gpu_ab.sh out.txt}
case $out in /*) ;; *) out=$PWD/$out ;; esac
cd "$(dirname "$0")/.." || exit 2
if [ -n "${PREBUILT:-}" ]; then
  scripts/unpack_prebuilt.sh "$PREBUILT" || exit 2
  export LD_LIBRARY_PATH=$PWD/$PREBUILT:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
presets=${PRESETS:-qwen3-30b-a3b olmoe-1b-7b mixtral-8x7b deepseek-v3}
mkdir -p "$(dirname "$out")"
: >"$out"
status=0
mapfile -t -d ';' variants < <(printf %s "${VARIANTS:?set VARIANTS}")
for round in $(seq 1 "${ROUNDS:-2}"); do
  for preset in $presets; do
    for variant in "${variants[@]}"; do
      read -r -a words <<<"${variant//$'\n'/ }"
      [ "${#words[@]}" -ge 2 ] || continue  # a blank entry
      label=${words[0]}
      program=${words[1]}
      rows=$(env ${words[@]:2} "$program" bench --device cuda:0 --preset "$preset" \
        --tokens "${TOKENS:-1024,4096,16384}" --repeats "${REPEATS:-20}" --backend cuda_fused ${EXTRA:-} 2>&1)
      [ $? -eq 0 ] || { status=1; echo "$rows" | tail -5; }
      echo "$rows" | grep -E '^\S+\s+cuda_fused\s' | awk -v prefix="r$round $label" '{ print prefix " " $0 }' |
        tee -a "$out"
    done
  done
done
exit $status
