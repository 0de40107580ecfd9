# Sourced by the Nsight Compute scripts (gpu_profile.sh, gpu_stalls.sh), from the repository root, after
# `out` is set: sets `cli` (scripts/cli_setup.sh) and `ncu` (on PATH or under /usr/local/cuda*), or exits with
# the reason.
# $1: the calling script's name, for the messages.
caller=${1:-ncu_cli_setup}
. scripts/cli_setup.sh
ncu=$(command -v ncu || true)
for candidate in /usr/local/cuda/bin/ncu /usr/local/cuda-1*/bin/ncu; do
  if [ -z "$ncu" ] && [ -x "$candidate" ]; then ncu=$candidate; fi
done
[ -n "$ncu" ] || { echo "$caller: ncu (Nsight Compute) not found" >&2; exit 2; }
