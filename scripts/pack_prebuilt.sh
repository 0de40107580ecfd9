#!/usr/bin/env bash
# Packs this machine's CUDA build (tests + CLI) with the shared libraries the GPU machine lacks into one
# folder (default .prebuilt/, git-ignored), so a GPU run can skip its own build: pass the folder in the
# device tool's `carry` and run `PREBUILT=.prebuilt scripts/gpu_check.sh` or `... scripts/gpu_bench.sh`.
# The build must have CUDA on and the GPU's architecture (build/release: 80;90a). Device time is the scarce
# resource (a fresh GPU machine spends 80-100 s building). The carry limit is 64 MiB for the working tree and
# the carried folders together, so the large files are gzipped (~22 MB in all, room for a baseline binary
# beside them: BASELINE=path/to/fusedmoe packs it as fusedmoe_base for same-call A/B runs); the GPU scripts
# unpack them (scripts/unpack_prebuilt.sh).
#
# Usage: scripts/pack_prebuilt.sh [build-dir] [out-dir]     (defaults build/release, .prebuilt)
#   MISSING="libdnnl.so.2 libOpenCL.so.1 libmpi_cxx.so.40"  libraries to copy along (not on the GPU machine)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
out=${2:-.prebuilt}
rm -rf "$out"
mkdir -p "$out"
cp "$build/tests/fusedmoe_tests" "$build/bin/fusedmoe" "$out/"
strip "$out/fusedmoe_tests" "$out/fusedmoe"
for library in ${MISSING:-libdnnl.so.2 libOpenCL.so.1 libmpi_cxx.so.40}; do
  path=$(ldd "$out/fusedmoe_tests" "$out/fusedmoe" | awk -v name="$library" '$1 == name { print $3; exit }')
  if [ -n "$path" ]; then cp -L "$path" "$out/"; fi
done
if [ -n "${BASELINE:-}" ]; then cp "$BASELINE" "$out/fusedmoe_base"; fi
for large in fusedmoe_tests fusedmoe fusedmoe_base libdnnl.so.2; do
  if [ -f "$out/$large" ]; then gzip -6 "$out/$large"; fi
done
echo "$(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' + local changes')" >"$out/commit.txt"
du -sh "$out"
ls -la "$out"
