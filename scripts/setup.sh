#!/usr/bin/env bash
# Installs what fusedmoe needs to build and test on Debian/Ubuntu, skipping what is already there.
# Usage: scripts/setup.sh            (build + test dependencies)
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev nlohmann-json3-dev
  clang clang-format libclang-rt-14-dev
  libopenmpi-dev openmpi-bin
  libdnnl-dev ocl-icd-opencl-dev
)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all packages present"
fi

# CUTLASS headers for cuda_cutlass_grouped (header-only; into the ignored .cutlass/include). Optional: without
# pip or a network the backend is simply not built (its registry entry says why). FUSEDMOE_CUTLASS_DIR overrides
# the location at configure time.
cutlass_version="4.2.0.0"
cutlass_root="$(cd "$(dirname "$0")/.." && pwd)/.cutlass"
if [ -f "$cutlass_root/include/cutlass/cutlass.h" ] && [ "$(cat "$cutlass_root/VERSION" 2>/dev/null)" = "$cutlass_version" ]; then
  echo "setup: CUTLASS $cutlass_version headers present in .cutlass/include"
elif ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1 || ! command -v unzip >/dev/null 2>&1; then
  echo "setup: python3 -m pip or unzip missing: skipping CUTLASS (cuda_cutlass_grouped will not be built)"
else
  cutlass_tmp="$(mktemp -d)"
  if python3 -m pip download --quiet --no-deps --dest "$cutlass_tmp" "nvidia-cutlass==$cutlass_version" &&
    unzip -q -o "$cutlass_tmp"/nvidia_cutlass-*.whl 'cutlass_library/source/include/*' \
      'nvidia_cutlass-*.dist-info/licenses/LICENSE.txt' -d "$cutlass_tmp/unpacked"; then
    rm -rf "$cutlass_root"
    mkdir -p "$cutlass_root"
    mv "$cutlass_tmp/unpacked/cutlass_library/source/include" "$cutlass_root/include"
    cp "$cutlass_tmp"/unpacked/nvidia_cutlass-*.dist-info/licenses/LICENSE.txt "$cutlass_root/LICENSE.txt"
    echo "$cutlass_version" >"$cutlass_root/VERSION"
    echo "setup: CUTLASS $cutlass_version headers unpacked into .cutlass/include"
  else
    echo "setup: could not fetch nvidia-cutlass $cutlass_version: cuda_cutlass_grouped will not be built"
  fi
  rm -rf "$cutlass_tmp"
fi
