#!/usr/bin/env bash
# Session 28 call 7 (~2 min): ncu per kernel at qwen3-30b-a3b M=1, efda083 against the register/shared align
# (call 6: 3.3% slower end to end): is it the align kernel itself?
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
done
