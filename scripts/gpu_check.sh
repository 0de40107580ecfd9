#!/usr/bin/env bash
# Builds fusedmoe with CUDA for this machine's GPU and runs everything CUDA: the CUDA tests (the
# M*k*H > 2^31 one included), compute-sanitizer memcheck and racecheck on small cases, the CPU suite of
# the same build, and `fusedmoe backends / check / run --device cuda`. Ends with a short summary; exits non-zero
# when anything failed.
#
# Needs: CUDA 13 (nvcc), CMake >= 3.25, a C++20 compiler, GoogleTest, CLI11, nlohmann-json. No network.
# Usage: scripts/gpu_check.sh [build-dir]        (default build/gpu)
#   ARCH=90a (default; Hopper) or ARCH=80 ...     CMAKE_CUDA_ARCHITECTURES
#   JOBS=N                                         build parallelism (default: nproc)
#   SANITIZE=0                                     skip compute-sanitizer
#   PREBUILT=.prebuilt                             no build: run the binaries scripts/pack_prebuilt.sh packed on
#                                                  another machine (carry the folder; CUDA tests only)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
build=${1:-build/gpu}
arch=${ARCH:-90a}
jobs=${JOBS:-$(nproc)}
logs=$build/gpu_check
cuda_filter='Cuda*:*/Cuda*'

nvcc=$(command -v nvcc || true)
for candidate in /usr/local/cuda/bin/nvcc /usr/local/cuda-13*/bin/nvcc; do
  if [ -z "$nvcc" ] && [ -x "$candidate" ]; then nvcc=$candidate; fi
done
if [ -z "$nvcc" ]; then
  echo "gpu_check: nvcc not found: put CUDA's bin/ on PATH" >&2
  exit 2
fi
sanitizer=$(command -v compute-sanitizer || true)
if [ -z "$sanitizer" ] && [ -x "$(dirname "$nvcc")/compute-sanitizer" ]; then sanitizer=$(dirname "$nvcc")/compute-sanitizer; fi

echo "== machine"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader
else
  echo "nvidia-smi not found"
fi
"$nvcc" --version | tail -2
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' (with local changes)')"
fi

mkdir -p "$logs"
rm -f "$logs"/*.log
if [ -n "${PREBUILT:-}" ]; then
  scripts/unpack_prebuilt.sh "$PREBUILT" || exit 2
  echo "== prebuilt binaries in $PREBUILT ($(cat "$PREBUILT/commit.txt" 2>/dev/null))"
  export LD_LIBRARY_PATH=$PWD/$PREBUILT:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  tests=$PREBUILT/fusedmoe_tests
  cli=$PREBUILT/fusedmoe
  if ldd "$tests" "$cli" | grep 'not found'; then
    echo "gpu_check: the prebuilt binaries miss libraries on this machine" >&2
    exit 2
  fi
  : >"$logs/build.log"
  CPU_TESTS=0
else
  echo "== configure + build ($build, CUDA architectures $arch)"
  # Warnings are counted, not fatal here (a newer host compiler must not stop the GPU run; CI builds with -Werror).
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DFUSEDMOE_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc" \
    -DCMAKE_CUDA_ARCHITECTURES="$arch" >"$logs/configure.log" 2>&1 || { cat "$logs/configure.log"; exit 2; }
  grep 'fusedmoe:' "$logs/configure.log"
  cmake --build "$build" -j "$jobs" --target fusedmoe_tests fusedmoe_cli 2>&1 | tee "$logs/build.log" | grep -E 'warning|error|Built target'
  [ "${PIPESTATUS[0]}" -eq 0 ] || exit 2
  tests=$build/tests/fusedmoe_tests
  cli=$build/bin/fusedmoe
fi

failed=()
run() {  # run <name> <command...>: output to $logs/<name>.log and the terminal
  local name=$1
  shift
  echo "== $name: $*"
  "$@" 2>&1 | tee "$logs/$name.log"
  local status=${PIPESTATUS[0]}
  if [ "$status" -ne 0 ]; then failed+=("$name (exit $status)"); fi
}

run cuda_tests env FUSEDMOE_SLOW_TESTS=1 "$tests" --gtest_filter="$cuda_filter" --gtest_color=no
if [ "${SANITIZE:-1}" != 0 ] && [ -n "$sanitizer" ]; then
  small='Cases/CudaFused.*/odd_sizes_*:Cases/CudaFused.*/e256_wg*:Cases/CudaFused.*/expert_map_*:Cases/CudaFused.*/decode_m1_*:Cases/CudaFused.*/stream_odd_sizes_stream:Experts/CudaRouter.*/E60:Cases/CudaLayer.*/deepseek_like'
  small+=':Cases/CudaBatched.*/odd_sizes:Cases/CudaBatched.*/duplicate_ids:Cases/CudaBatchedSlabs.*:CudaFusedWarm.*:CudaFusedAlign.*'
  small+=':Cases/CudaFusedPersistent.*/odd_sizes:Cases/CudaFusedPersistent.*/all_on_one_expert_k1'
  small+=':Cases/CudaFusedPersistent.*/duplicate_ids:CudaFusedPersistentCounters.*'
  run memcheck "$sanitizer" --tool memcheck --error-exitcode 1 "$tests" --gtest_filter="$small"
  run racecheck "$sanitizer" --tool racecheck --error-exitcode 1 "$tests" \
    --gtest_filter='Cases/CudaFused.*/odd_sizes_*:Cases/CudaFused.*/not_a_tile_multiple_wg*:Cases/CudaFused.*/tile_m64_*:Cases/CudaFused.*/stream_odd_sizes_stream:Cases/CudaFused.*/duplicate_ids_stream:Experts/CudaRouter.*/E60:Cases/CudaBatched.*/odd_sizes:Cases/CudaFusedPersistent.*/odd_sizes:Cases/CudaFusedPersistent.*/duplicate_ids'
else
  echo "== compute-sanitizer: skipped (${sanitizer:-not found})"
fi
if [ "${CPU_TESTS:-1}" != 0 ]; then
  run cpu_tests "$tests" --gtest_filter="-$cuda_filter" --gtest_brief=1 --gtest_color=no
fi
run backends "$cli" backends --device cuda --preset qwen3-30b-a3b
run check_small "$cli" check --device cuda --tokens 33 --experts 8 --topk 3 --hidden 96 --intermediate 40
run check_qwen3 "$cli" check --device cuda --preset qwen3-30b-a3b --tokens 64
run run_cuda "$cli" run --device cuda:0 --preset qwen3-30b-a3b --tokens 64

echo
echo "== summary ($(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || true))"
echo "build: $(grep -c 'warning' "$logs/build.log" || true) compiler warning lines   ($logs/build.log)"
for name in cuda_tests cpu_tests; do
  log=$logs/$name.log
  [ -f "$log" ] || continue
  passed=$(grep -oE '^\[  PASSED  \] [0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
  skipped=$(grep -oE '^\[  SKIPPED \] [0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
  fails=$(grep -oE '^\[  FAILED  \] [0-9]+ test' "$log" | grep -oE '[0-9]+' || echo 0)
  echo "$name: ${passed:-0} passed, ${skipped:-0} skipped, ${fails:-0} failed   ($log)"
  grep -E '^\[  FAILED  \] [A-Za-z]' "$log" | sort -u | sed 's/^/    /'
done
if grep -q 'no CUDA device' "$logs/cuda_tests.log"; then
  echo "note: tests skipped for lack of a device: $(grep -m1 -o 'no CUDA device: .*' "$logs/cuda_tests.log")"
fi
for name in memcheck racecheck; do
  [ -f "$logs/$name.log" ] && echo "$name: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$logs/$name.log" | tail -1)"
done
grep -hE 'passed$|PASS|FAIL' "$logs"/check_*.log 2>/dev/null | sed 's/^/check: /'
grep -h 'checksum' "$logs"/run_cuda.log 2>/dev/null | sed 's/^/run --device cuda:0: /'
if ((${#failed[@]})); then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all passed"
