#!/usr/bin/env bash
# Builds the libFuzzer target for the safetensors reader (clang, ASan + UBSan) in build-fuzz/, seeds a
# corpus from the golden files and a few generated ones, and fuzzes for FUZZ_SECONDS (default 60).
# Exits non-zero on any crash, leak, sanitizer report or broken invariant.
#
# Environment: FUZZ_SECONDS (60), FUZZ_MAX_LEN (65536), FUZZ_JOBS (2, build parallelism),
# FUZZ_BUILD_DIR (<repo>/build-fuzz), FUZZ_SOURCE_DIR (<repo>), FUSEDMOE_GOLDEN_DIR (<repo>/../shared/golden),
# FUZZ_CMAKE_ARGS (extra configure arguments), CXX (clang++).
set -euo pipefail
export LC_ALL=C  # byte lengths below, not character counts

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SOURCE_DIR="${FUZZ_SOURCE_DIR:-$ROOT}"
BUILD_DIR="${FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
GOLDEN_DIR="${FUSEDMOE_GOLDEN_DIR:-$ROOT/../shared/golden}"
SECONDS_TO_RUN="${FUZZ_SECONDS:-60}"
MAX_LEN="${FUZZ_MAX_LEN:-65536}"
JOBS="${FUZZ_JOBS:-2}"
LOCK=/tmp/fusedmoe-build.lock

log() { printf 'fuzz.sh: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    log "need root to run: $*"
    return 1
  fi
}

# ---- toolchain: clang++ with the libFuzzer and sanitizer runtimes ------------------------------
CXX_COMPILER="${CXX:-}"
if [ -z "$CXX_COMPILER" ] || ! "$CXX_COMPILER" --version 2>/dev/null | grep -qi clang; then
  CXX_COMPILER="$(command -v clang++ || command -v clang++-14 || true)"
fi

probe_fuzzer() {
  local dir
  dir="$(mktemp -d)"
  printf '%s\n' 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' \
    >"$dir/probe.cpp"
  "$CXX_COMPILER" -fsanitize=fuzzer,address,undefined "$dir/probe.cpp" -o "$dir/probe" >/dev/null 2>&1
  local status=$?
  rm -rf "$dir"
  return $status
}

if [ -z "$CXX_COMPILER" ] || ! probe_fuzzer; then
  log "clang++ with libFuzzer not usable; installing clang-14 and libclang-rt-14-dev"
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends clang-14 libclang-rt-14-dev \
    libomp-14-dev
  CXX_COMPILER="$(command -v clang++ || command -v clang++-14)"
  probe_fuzzer || { log "$CXX_COMPILER still cannot link -fsanitize=fuzzer"; exit 1; }
fi
log "compiler: $CXX_COMPILER ($("$CXX_COMPILER" --version | head -n1))"

# ---- configure and build --------------------------------------------------------------------
GENERATOR=()
if command -v ninja >/dev/null 2>&1 && [ ! -f "$BUILD_DIR/Makefile" ]; then GENERATOR=(-G Ninja); fi
with_lock() { if command -v flock >/dev/null 2>&1; then flock "$LOCK" "$@"; else "$@"; fi; }

# shellcheck disable=SC2086  # FUZZ_CMAKE_ARGS is a list of words
cmake -S "$SOURCE_DIR" -B "$BUILD_DIR" "${GENERATOR[@]}" \
  -DCMAKE_CXX_COMPILER="$CXX_COMPILER" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DFUSEDMOE_FUZZ=ON \
  -DFUSEDMOE_SANITIZE=address,undefined,fuzzer-no-link \
  -DFUSEDMOE_BUILD_TESTS=OFF -DFUSEDMOE_BUILD_CLI=OFF -DFUSEDMOE_CUDA=OFF \
  ${FUZZ_CMAKE_ARGS:-} >/dev/null
with_lock cmake --build "$BUILD_DIR" --target safetensors_fuzz -j "$JOBS"
FUZZER="$(find "$BUILD_DIR" -type f -name safetensors_fuzz -perm -u+x | head -n1)"
[ -n "$FUZZER" ] || { log "safetensors_fuzz was not built"; exit 1; }

# ---- seeds: golden files that fit, plus small generated ones ----------------------------------
SEEDS="$BUILD_DIR/fuzz/seeds/safetensors"    # rebuilt every run
CORPUS="$BUILD_DIR/fuzz/corpus/safetensors"  # kept between runs; libFuzzer adds new inputs here
ARTIFACTS="$BUILD_DIR/fuzz/artifacts"
rm -rf "$SEEDS"
mkdir -p "$SEEDS" "$CORPUS" "$ARTIFACTS"

if [ -d "$GOLDEN_DIR" ]; then
  while IFS= read -r -d '' file; do
    # Larger files would be cut at -max_len and only seed truncated inputs.
    if [ "$(stat -c %s "$file")" -le "$MAX_LEN" ]; then cat "$file" >"$SEEDS/golden_$(basename "$file")"; fi
  done < <(find "$GOLDEN_DIR" -name '*.safetensors' -print0)
else
  log "no golden directory at $GOLDEN_DIR: seeding with generated files only"
fi

le64() {
  local value=$1 index escapes=""
  for index in 0 1 2 3 4 5 6 7; do escapes+=$(printf '\\x%02x' $(((value >> (8 * index)) & 255))); done
  printf '%b' "$escapes"
}
# seed NAME JSON [DATA as printf %b escapes]
seed() {
  { le64 "${#2}"; printf '%s' "$2"; printf '%b' "${3:-}"; } >"$SEEDS/$1"
}
entry() { printf '{"dtype":"%s","shape":%s,"data_offsets":%s}' "$1" "$2" "$3"; }
seed empty '{}'
seed padded '{}      '
seed metadata '{"__metadata__":{"format":"pt","k":"v"}}'
seed f32 "{\"w\":$(entry F32 '[2]' '[0,8]')}" '\x00\x00\x80\x3f\x00\x00\x00\xc0'
seed mixed "{\"__metadata__\":{\"a\":\"b\"},\"i64\":$(entry I64 '[1]' '[0,8]'),\"f32\":$(entry F32 '[1,1]' '[8,12]'),\"i32\":$(entry I32 '[1]' '[12,16]'),\"bf16\":$(entry BF16 '[1]' '[16,18]'),\"f16\":$(entry F16 '[1]' '[18,20]'),\"u8\":$(entry U8 '[2,2]' '[20,24]')}" \
  '\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x3f\x07\x00\x00\x00\x80\x3f\x00\x3c\x01\x02\x03\x04'
seed edge "{\"e\":$(entry F32 '[0,3]' '[0,0]'),\"s\":$(entry F32 '[]' '[0,4]'),\"r5\":$(entry U8 '[1,1,1,1,2]' '[4,6]')}" \
  '\x00\x00\x80\x3f\x05\x06'
seed misaligned "{\"w\":$(entry F32 '[1]' '[0,4]')} " '\x00\x00\x80\x3f'

# ---- fuzz -------------------------------------------------------------------------------------
LOG="$BUILD_DIR/fuzz/safetensors_fuzz.log"
log "running $FUZZER for ${SECONDS_TO_RUN}s (max_len $MAX_LEN); log: $LOG"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
set +e
"$FUZZER" -max_total_time="$SECONDS_TO_RUN" -max_len="$MAX_LEN" -timeout=25 -print_final_stats=1 \
  -dict="$ROOT/tests/fuzz/safetensors.dict" -artifact_prefix="$ARTIFACTS/" "$CORPUS" "$SEEDS" 2>&1 | tee "$LOG" |
  grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|stat::|==[0-9]+==|.*(ERROR|runtime error|invariant broken|Test unit written))'
status=${PIPESTATUS[0]}
set -e

if [ "$status" -ne 0 ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|runtime error:|invariant broken' "$LOG"; then
  log "FAILED (exit $status): see $LOG and $ARTIFACTS"
  ls -l "$ARTIFACTS" >&2 || true
  exit 1
fi
log "no findings in ${SECONDS_TO_RUN}s; corpus: $(find "$CORPUS" -type f | wc -l) inputs in $CORPUS"
