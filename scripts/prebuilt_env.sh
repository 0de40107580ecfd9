# Sourced by one-call device scripts (.prebuilt/dev*.sh), from the repository root: unpacks the prebuilt
# folder (default .prebuilt; scripts/pack_prebuilt.sh), sets P to it, puts its libraries on LD_LIBRARY_PATH,
# marks every program in it executable, and prints the card and the packed commit.
P=${PREBUILT:-.prebuilt}
scripts/unpack_prebuilt.sh "$P" >/dev/null || exit 2
for program in "$P"/fusedmoe*; do
  case $program in *.gz) ;; *) chmod +x "$program" ;; esac
done
export LD_LIBRARY_PATH=$PWD/$P:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
nvidia-smi --query-gpu=name --format=csv,noheader
cat "$P/commit.txt"
