#!/usr/bin/env bash
# Session 33 call 2 (one GPU: the two-GPU kind was not lent then): the README's `make test` route on a GPU machine, its Release half: the
# Makefile's -Werror build, then ctest over everything (CUDA, MPI, NCCL over 2 GPUs). The device has no
# network, so the setup stamp is touched instead of scripts/setup.sh (apt); CUTLASS's headers travel in .cutlass.
set -u
cd "$(dirname "$0")/../../.."
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; gcc --version | head -1; cmake --version | head -1
git log --oneline -1 2>/dev/null || true
export NCCL_NVLS_ENABLE=0
mkdir -p build && touch build/.setup-done
start=$(date +%s)
timeout 240 make build JOBS=$(nproc) > $OUT/build.log 2>&1; echo "make build rc=$? in $(( $(date +%s) - start )) s"
grep -E "fusedmoe:" $OUT/build.log | head -20; echo "warning lines: $(grep -ciE "warning" $OUT/build.log)"
tail -3 $OUT/build.log
start=$(date +%s)
cd build/release && timeout 330 ctest -j 16 --output-on-failure > $OUT/ctest.log 2>&1; echo "ctest rc=$? in $(( $(date +%s) - start )) s"
tail -40 $OUT/ctest.log | grep -v "^ *Start"
gzip -9 $OUT/ctest.log $OUT/build.log
