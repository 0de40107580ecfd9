# Sourced by the GPU scripts that run the CLI (gpu_bench.sh, gpu_retune.sh, and through ncu_cli_setup.sh the
# Nsight Compute ones), from the repository root, after `out` is set: creates $out and sets `cli` to the
# prebuilt CLI with PREBUILT=folder (scripts/pack_prebuilt.sh; its libraries go on LD_LIBRARY_PATH), else to
# build/gpu's, built here for ${ARCH:-90a} when missing; exits with the log's tail when that fails.
cli=build/gpu/bin/fusedmoe
if [ -n "${PREBUILT:-}" ]; then
  scripts/unpack_prebuilt.sh "$PREBUILT" || exit 2
  export LD_LIBRARY_PATH=$PWD/$PREBUILT:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  cli=$PREBUILT/fusedmoe
fi
mkdir -p "$out"
if [ ! -x "$cli" ]; then
  cmake -S . -B build/gpu -DCMAKE_BUILD_TYPE=Release -DFUSEDMOE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="${ARCH:-90a}" \
    -DFUSEDMOE_BUILD_TESTS=OFF >"$out/configure.log" 2>&1 || { cat "$out/configure.log"; exit 2; }
  cmake --build build/gpu -j "$(nproc)" --target fusedmoe_cli >"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 2; }
fi
