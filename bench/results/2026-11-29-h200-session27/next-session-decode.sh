#!/usr/bin/env bash
# Prepared in session 27 for a later session, any Hopper card (~4 min). .prebuilt: main's binaries (cfe449d
# or later) and fusedmoe_base = 0b80215 built for 80;90a (git worktree add ../wt-base 0b80215; cmake -S .
# -B build8090 -DFUSEDMOE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="80;90a" -DFUSEDMOE_BUILD_TESTS=OFF; target
# fusedmoe_cli; BASELINE=../wt-base/build8090/bin/fusedmoe scripts/pack_prebuilt.sh).
# The align kernel's residual at decode (session 27, results section 4): qwen3 M=1 1.9%, olmoe M=1 1.1%
# slower than on 0b80215. (1) ncu per-kernel times at qwen3 M=1, main and base; (2) the align's warp stalls
# per SASS instruction on both (which load or barrier the extra time waits on).
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
B=.prebuilt-base
rm -rf $B && mkdir $B
cp "$P/fusedmoe_base" $B/fusedmoe && chmod +x $B/fusedmoe
for f in "$P"/lib*; do ln -s "$PWD/$f" $B/; done
for folder in $B $P; do
  echo "== qwen3-30b-a3b M=1, $folder"
  PREBUILT=$folder PRESET=qwen3-30b-a3b TOKENS=1 timeout 60 scripts/gpu_profile.sh $OUT/ncu-$(basename $folder) 2>&1 | tail -5
  PREBUILT=$folder PRESET=qwen3-30b-a3b TOKENS=1 KERNEL=align_single_block timeout 90 \
    scripts/gpu_stalls.sh $OUT/stalls-$(basename $folder) 2>&1 | tail -30
done
