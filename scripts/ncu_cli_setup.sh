# Sourced by the Nsight Compute scripts (gpu_profile.sh, gpu_stalls.sh), from the repository root, after
# `out` is set: sets `cli` (the prebuilt CLI with PREBUILT=folder, else build/gpu's, built here for
# ${ARCH:-90a} when missing) and `ncu` (on PATH or under /usr/local/cuda*), or exits with the reason.
# $1: the calling script's name, for the messages.
caller=${1:-ncu_cli_setup}
cli=build/gpu/bin/fusedmoe
if [ -n "${PREBUILT:-}" ]; then
  scripts/unpack_prebuilt.sh "$PREBUILT" || exit 2
  export LD_LIBRARY_PATH=$PWD/$PREBUILT:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  cli=$PREBUILT/fusedmoe
fi
mkdir -p "$out"
ncu=$(command -v ncu || true)
for candidate in /usr/local/cuda/bin/ncu /usr/local/cuda-1*/bin/ncu; do
  if [ -z "$ncu" ] && [ -x "$candidate" ]; then ncu=$candidate; fi
done
[ -n "$ncu" ] || { echo "$caller: ncu (Nsight Compute) not found" >&2; exit 2; }
if [ ! -x "$cli" ]; then
  cmake -S . -B build/gpu -DCMAKE_BUILD_TYPE=Release -DFUSEDMOE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="${ARCH:-90a}" \
    -DFUSEDMOE_BUILD_TESTS=OFF >"$out/configure.log" 2>&1 || { cat "$out/configure.log"; exit 2; }
  cmake --build build/gpu -j "$(nproc)" --target fusedmoe_cli >"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 2; }
fi
