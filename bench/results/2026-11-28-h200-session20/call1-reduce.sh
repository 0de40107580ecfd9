#!/usr/bin/env bash
# Session 20's third call (prepared in session 19; ~5 minutes, any Hopper card): the reduce over top-k with
# persistent blocks that read their next group's ids and positions while the current rows are in flight
# (reduce-pipelined-untested.patch; 78 registers, 3 blocks per SM, no spills). Session 19's ncu had the
# reduce at 61-68% of DRAM peak at prefill (qwen3 M=4096 51 us, M=16384 184 us: 6-7% of the forward); a
# block per token spent about half its life on the ids' round trip with no rows in flight.
# fusedmoe10 / fusedmoe_tests10 = main + the patch. (1) every CUDA test, bounded, (2) the reduce's own time
# (ncu) at qwen3 M=4096/16384 on both, (3) A/B of the forward.
set -u
cd "$(dirname "$0")/.."
. scripts/prebuilt_env.sh
timeout 200 $P/fusedmoe_tests10 --gtest_filter='Cuda*:*Cuda*' > $OUT/test.txt 2>&1
rc=$?; echo tests rc $rc; grep -E "^\[  (PASSED|FAILED)|tests? from .* ran" $OUT/test.txt | head -20
[ $rc -eq 0 ] || { grep -B2 -A8 Failure $OUT/test.txt | head -40; exit 0; }
ncu=$(command -v ncu || ls /usr/local/cuda*/bin/ncu | head -1)
for cli in fusedmoe fusedmoe10; do
  for m in 4096 16384; do
    timeout 60 $ncu --kernel-name regex:reduce_topk --metrics gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed \
      $P/$cli bench --device cuda:0 --preset qwen3-30b-a3b --tokens $m --repeats 1 2>/dev/null | grep -E "gpu__time|dram__" | tail -2 | sed "s/^/$cli M=$m /"
  done
done
V="main $P/fusedmoe; pipelined $P/fusedmoe10"
VARIANTS="$V" TOKENS=1,64,1024,4096,16384 ROUNDS=2 timeout 250 scripts/gpu_ab.sh $OUT/ab.txt > /dev/null 2>&1
echo ab rc $?
scripts/ab_summary.py $OUT/ab.txt main
