#!/usr/bin/env bash
# Session 17 call 7: warp-stall sampling per SASS instruction of GEMM1 and GEMM2 (qwen3 M=16384, HEAD).
set -u
cd "$(dirname "$0")/.."
scripts/unpack_prebuilt.sh .prebuilt >/dev/null
P=.prebuilt
export LD_LIBRARY_PATH=$PWD/$P:/usr/local/cuda/lib64
NCU=/usr/local/cuda/bin/ncu
for g in gemm1 gemm2; do
  timeout 120 $NCU --clock-control none --section SourceCounters --section WarpStateStats --kernel-name regex:${g}_warp \
    --launch-skip 2 --launch-count 1 -f -o $OUT/$g $P/fusedmoe bench --device cuda:0 --preset qwen3-30b-a3b --tokens 16384 --repeats 1 > $OUT/$g.log 2>&1
  echo "$g rc $?"
  $NCU --import $OUT/$g.ncu-rep --page details --print-details all > $OUT/${g}_details.txt 2>&1
  $NCU --import $OUT/$g.ncu-rep --page source --csv --print-source sass > $OUT/${g}_sass.csv 2>&1 || \
    $NCU --import $OUT/$g.ncu-rep --page source --csv > $OUT/${g}_sass.csv 2>&1
  echo "$g sass rc $? $(wc -l < $OUT/${g}_sass.csv) lines"; head -c 600 $OUT/${g}_sass.csv; echo
  grep -i -E "stall|warp cycles" $OUT/${g}_details.txt | head -40
  gzip -f $OUT/${g}_sass.csv
done
