#!/usr/bin/env bash
# Session 21's first call (prepared in session 20; ~5 minutes, any Hopper card): what row padding costs,
# measured directly. `--routing balanced` gives every expert exactly M*k/E rows, so the token count sets the
# padding: qwen3 M=4096 is 256 rows per expert (two full 128-row blocks, no padding), M=4112 257 (a third
# block holding one row), M=4160 260 (four rows), M=4032 252 (two blocks, the second 124 rows). The time of the
# one-row blocks, per block, says whether a near-empty tile costs a full tile's weight loads (docs/status.md
# item 0b); balanced M=4096 against the floor says how close the kernels come without padding.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
# First, session 20's fix: `fusedmoe run --device cuda:0` (it refused its host weights before).
$P/fusedmoe run --device cuda:0 --preset qwen3-30b-a3b --tokens 64 2>&1 | tail -3
# And session 20's new reduce case (threads walking several items with k = 9), not run yet.
timeout 120 $P/fusedmoe_tests --gtest_filter='*reduce_stride*' 2>&1 | grep -E "^\[  (PASSED|FAILED)|Failure" | head -5
bench() { $P/fusedmoe bench --device cuda:0 --backend cuda_fused --repeats 20 "$@" 2>&1 | grep -E '^\S+\s+cuda_fused\s'; }
for round in 1 2 3; do
  bench --preset qwen3-30b-a3b --routing balanced --tokens 2048,2064,4032,4096,4112,4160,6144 | sed "s/^/r$round balanced /"
  bench --preset qwen3-30b-a3b --tokens 2048,4096 | sed "s/^/r$round uniform /"
  # The same rows on other tiles: the pair (weights multicast to both row blocks of one expert: at balanced
  # M=4096 every pair is one expert's two blocks) and the 64-row tile (M=4112: a fifth block of one row).
  FUSEDMOE_CUDA_FUSED_TILE=wg128_n256_ws_pair bench --preset qwen3-30b-a3b --routing balanced --tokens 4096,4112 | sed "s/^/r$round balanced-pair /"
  FUSEDMOE_CUDA_FUSED_TILE=wg64_n256_ws bench --preset qwen3-30b-a3b --routing balanced --tokens 4096,4112 | sed "s/^/r$round balanced-wg64 /"
  bench --preset deepseek-v3 --routing balanced --tokens 4096,4128,8192,8224 | sed "s/^/r$round balanced /"
  bench --preset deepseek-v3 --tokens 4096,8192 | sed "s/^/r$round uniform /"
  bench --preset olmoe-1b-7b --routing balanced --tokens 1024,1032,4096,4104 | sed "s/^/r$round balanced /"
  bench --preset olmoe-1b-7b --tokens 1024,4096 | sed "s/^/r$round uniform /"
  bench --preset mixtral-8x7b --routing balanced --tokens 1024,1028,4096,4100 | sed "s/^/r$round balanced /"
  bench --preset mixtral-8x7b --tokens 1024,4096 | sed "s/^/r$round uniform /"
done > $OUT/padding.txt
echo bench rc $?
python3 - $OUT/padding.txt <<'PY'
import collections, statistics, sys
cells = collections.defaultdict(list)
for line in open(sys.argv[1]):
    w = line.split()
    # r<round> <routing> <preset> cuda_fused <M> <ms> ... <ratio to floor> passed
    cells[(w[2], w[1], int(w[4]))].append((float(w[5]), w[-2]))
print(f"{'preset':14} {'routing':14} {'M':>6} {'ms (median)':>12} {'min-max':>17} floor-ratio")
for key in sorted(cells):
    times = [t for t, _ in cells[key]]
    print(f"{key[0]:14} {key[1]:14} {key[2]:>6} {statistics.median(times):12.3f} {min(times):8.3f}-{max(times):.3f} {cells[key][0][1]}")
PY
for m in 4096 4112; do
  echo "== ncu qwen3 balanced M=$m"
  PREBUILT=$P PRESET=qwen3-30b-a3b TOKENS=$m EXTRA="--routing balanced" timeout 120 scripts/gpu_profile.sh $OUT/profile-$m 2>&1 | tail -5
done
