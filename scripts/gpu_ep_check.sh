#!/usr/bin/env bash
# Expert parallelism on the GPUs of one machine (needs 2+ GPUs, NCCL and OpenMPI): builds everything in
# build/gpu, runs the NCCL tests (one process with a thread per GPU, then mpirun -np 2), and times
# `fusedmoe check --ep 2 --device cuda` in every mode (all2all_batched: cuda_batched) on a preset against one GPU.
#
# Usage: scripts/gpu_ep_check.sh [build-dir]   (default build/gpu)
#   PRESET=qwen3-30b-a3b   TOKENS="64 1024"   JOBS=N   TARGETS="fusedmoe_cli ..."   SKIP_SINGLE=1
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
build=${1:-build/gpu}
preset=${PRESET:-qwen3-30b-a3b}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
nvidia-smi --query-gpu=index,name,compute_cap --format=csv,noheader
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DFUSEDMOE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="${ARCH:-90a}" \
  >/tmp/fusedmoe_ep_configure.log 2>&1 || { cat /tmp/fusedmoe_ep_configure.log; exit 2; }
grep "fusedmoe:" /tmp/fusedmoe_ep_configure.log
cmake --build "$build" -j "${JOBS:-$(nproc)}" --target ${TARGETS:-all} 2>&1 | grep -E 'warning|error|Built target' || true
failed=()
step() {  # step <name> <command...>
  echo "== $1"
  shift
  "$@" || failed+=("$*")
}
[ -n "${SKIP_SINGLE:-}" ] || step "NCCL tests, one process" "$build/tests/fusedmoe_tests" --gtest_filter='*Nccl*' --gtest_brief=1
step "NCCL tests, mpirun (ctest -L gpu)" ctest --test-dir "$build" -L gpu --output-on-failure
for tokens in ${TOKENS:-64 1024}; do
  for mode in allgather all2all all2all_batched; do
    step "check --ep 2 --ep-mode $mode, $preset, M=$tokens" timeout 180 mpirun -np 2 "$build/bin/fusedmoe" check --ep 2 \
      --ep-mode "$mode" --device cuda --preset "$preset" --tokens "$tokens"
  done
done
if ((${#failed[@]})); then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
echo "all passed"
