#!/usr/bin/env bash
# Prepared in session 26, any Hopper card (~8 min): branch `skip-padding-pairs` (2ebda3d, on main b06cbca, whose kernels equal 1b8e817's),
# packed as fusedmoe_pairs and fusedmoe_tests_pairs: the pair tiles' consumer warpgroups of padding rows only
# skip their MMAs too (the leader from the run it loads to take the tile, the partner from its own row
# block's run, loaded while it acquires its rows), and the single-CTA rule moved into
# raster.hpp's padding_warpgroups (host-tested). (1) the branch's cuda_fused tests (every forward case on
# the pair tile against fp64 and the other tiles); (2) a same-call A/B against main at the cells the tables
# give the pair (mixtral-8x7b M > 4096, deepseek-v3 M = 5633-8192) and one single-CTA cell (deepseek M=4096,
# wg192: must stay level), 200 replays, 2 rounds. Merge the branch if its tests pass (then gpu_check) and it
# is level or faster everywhere.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
timeout 120 "$P"/fusedmoe_tests_pairs --gtest_filter='CudaFused*:*/CudaFused*' > $OUT/tests-pairs.log 2>&1
echo "branch tests rc $?"; grep -E "^\[  (PASSED|FAILED)|FAILED  \]" $OUT/tests-pairs.log | head -20
V="main $P/fusedmoe; pairs $P/fusedmoe_pairs"
PREBUILT=$P PRESETS=deepseek-v3 TOKENS=4096,6144,7168,8192 ROUNDS=2 REPEATS=200 VARIANTS="$V" \
  timeout 150 scripts/gpu_ab.sh $OUT/ab-pairs-deepseek.txt >/dev/null
scripts/ab_summary.py $OUT/ab-pairs-deepseek.txt main
PREBUILT=$P PRESETS=mixtral-8x7b TOKENS=6144,8192,16384 ROUNDS=2 REPEATS=200 VARIANTS="$V" \
  timeout 150 scripts/gpu_ab.sh $OUT/ab-pairs-mixtral.txt >/dev/null
scripts/ab_summary.py $OUT/ab-pairs-mixtral.txt main
# (3) With the parity order and the pairs' skip, does the pair tile take cells the table gives wg128_n256_ws
# (mixtral M=1024: 256 +- 15 rows per expert; qwen3 / olmoe M=4096)? The branch's table against its pair.
PREBUILT=$P PRESETS="mixtral-8x7b qwen3-30b-a3b olmoe-1b-7b" TOKENS=1024,4096 ROUNDS=2 REPEATS=200 \
  VARIANTS="table $P/fusedmoe_pairs; pair $P/fusedmoe_pairs FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws_pair" \
  timeout 120 scripts/gpu_ab.sh $OUT/ab-pair-tile.txt >/dev/null
scripts/ab_summary.py $OUT/ab-pair-tile.txt table
