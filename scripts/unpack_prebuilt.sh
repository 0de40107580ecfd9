#!/usr/bin/env bash
# Unzips what scripts/pack_prebuilt.sh gzipped (in place, once) and marks the programs executable.
# Usage: scripts/unpack_prebuilt.sh .prebuilt
set -euo pipefail
folder=${1:?usage: scripts/unpack_prebuilt.sh <prebuilt folder>}
[ -d "$folder" ] || { echo "unpack_prebuilt: no folder $folder" >&2; exit 2; }
for packed in "$folder"/*.gz; do
  [ -e "$packed" ] || continue
  gunzip -f "$packed"
done
for program in fusedmoe fusedmoe_tests fusedmoe_base fusedmoe_probe; do
  if [ -f "$folder/$program" ]; then chmod +x "$folder/$program"; fi
done
