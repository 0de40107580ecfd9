#!/usr/bin/env bash
# Session 31 call 3: the README's `make test` route on a GPU machine (its Release half: build with -Werror by
# the Makefile, then ctest over everything incl. the CUDA and MPI tests). The device has no network, so the
# setup stamp is touched instead of scripts/setup.sh (apt); CUTLASS's headers are carried in .cutlass.
set -u
cd "$(dirname "$0")/../../.."
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; gcc --version | head -1; cmake --version | head -1
mkdir -p build && touch build/.setup-done
start=$(date +%s)
timeout 420 make build JOBS=16 > $OUT/build.log 2>&1; echo "make build rc=$? in $(( $(date +%s) - start )) s"
grep -E "fusedmoe:" $OUT/build.log | head -20; grep -ciE "warning" $OUT/build.log
tail -5 $OUT/build.log
start=$(date +%s)
cd build/release && timeout 420 ctest -j 16 --output-on-failure > $OUT/ctest.log 2>&1; echo "ctest rc=$? in $(( $(date +%s) - start )) s"
tail -30 $OUT/ctest.log | grep -v "^ *Start"
