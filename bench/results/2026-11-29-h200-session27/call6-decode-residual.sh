#!/usr/bin/env bash
# Session 27, call 6 (any Hopper card, ~5 min). Call 5's residual decode gap (main 1.033 of base at qwen3
# M=1, 1.029 at olmoe M=1): base (0b80215) was built for sm_90a only, main for 80 and 90a.
# .prebuilt: fusedmoe = main (e9f0c6c's kernels), fusedmoe_base = 0b80215 for 90a, fusedmoe_base8090 =
# 0b80215 for 80;90a. (1) decode A/B of the three, CUDA graphs, 20 replays, 3 rounds, M = 1 / 8;
# (2) ncu per-kernel times of one qwen3 and one olmoe M=1 forward, base8090 against main (which kernel moved).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
PREBUILT=$P PRESETS="qwen3-30b-a3b olmoe-1b-7b deepseek-v3" TOKENS=1,8 ROUNDS=3 REPEATS=20 \
  VARIANTS="base $P/fusedmoe_base; base8090 $P/fusedmoe_base8090; main $P/fusedmoe" \
  timeout 170 scripts/gpu_ab.sh $OUT/ab-decode.txt >/dev/null
scripts/ab_summary.py $OUT/ab-decode.txt base
B=.prebuilt-base
rm -rf $B && mkdir $B
cp "$P/fusedmoe_base8090" $B/fusedmoe && chmod +x $B/fusedmoe
for f in "$P"/lib*; do ln -s "$PWD/$f" $B/; done
for preset in qwen3-30b-a3b olmoe-1b-7b; do
  for folder in $B $P; do
    echo "== $preset M=1, $folder"
    PREBUILT=$folder PRESET=$preset TOKENS=1 timeout 60 scripts/gpu_profile.sh $OUT/ncu-$(basename $folder) 2>&1 | tail -9
  done
done
