#!/usr/bin/env python3
"""Where a kernel's warps wait, from Nsight Compute's warp-stall sampling per SASS instruction.

Input: the CSV of `ncu --import R.ncu-rep --page source --csv --print-source sass` (plain or .gz), for a
report collected with `--section SourceCounters` (scripts/gpu_stalls.sh writes both). Output: the share of
all samples by what the warp was doing (waiting on an mbarrier, keyed by its shared-memory operand; on a
wgmma group; on cp.async groups; issuing HGMMAs or cp.async; anything else), then the instructions with
the most samples.

A consumer that waits on a full-stage barrier far more than on its wgmma groups is starved of data; one that
waits on its wgmma groups is MMA-bound (bench/results/2026-11-28-h200-session17.md, section 6).

Usage: scripts/stall_summary.py FILE.csv[.gz] [--top N]
"""
import argparse
import csv
import gzip
import sys

SAMPLES = "Warp Stall Sampling (All Samples)"


def read_rows(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        lines = f.read().splitlines()
    header = next((i for i, line in enumerate(lines) if line.startswith('"Address"')), None)
    if header is None:
        sys.exit(f"stall_summary: {path} has no '\"Address\",...' header: not an ncu source-page CSV")
    rows = list(csv.DictReader(lines[header:]))
    if not rows or SAMPLES not in rows[0]:
        sys.exit(f"stall_summary: {path} has no '{SAMPLES}' column: collect with --section SourceCounters")
    return rows


def samples(row):
    value = row[SAMPLES].replace(",", "").strip()
    return float(value) if value else 0.0


def category(rows, index):
    """What the warp at rows[index] waits on or does."""
    source = rows[index]["Source"]
    previous = rows[index - 1]["Source"] if index > 0 else ""
    if "BRA" in source and "SYNCS.PHASECHK" in previous:
        # The branch back into a try_wait loop: the operand names the barrier ([UR8+0x38000] and the like).
        operand = previous[previous.find("[") : previous.find("]") + 1]
        return f"mbarrier wait {operand}"
    if "WARPGROUP.DEPBAR" in source:
        return "wgmma group wait"
    if "HGMMA" in source or source.strip() == "NOP":
        return "HGMMA issue"
    if "DEPBAR" in source:
        return "cp.async group wait"
    if "LDGSTS" in source:
        return "cp.async issue"
    if "SYNCS.ARRIVE" in source:
        return "mbarrier arrive"
    return "other"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    rows = read_rows(args.csv)
    total = sum(samples(row) for row in rows)
    if total == 0:
        sys.exit("stall_summary: no samples (was --section SourceCounters collected?)")
    shares = {}
    for index, row in enumerate(rows):
        name = category(rows, index)
        shares[name] = shares.get(name, 0.0) + samples(row)
    print(f"{int(total)} samples; share by what the warp waits on or does:")
    for name, value in sorted(shares.items(), key=lambda item: -item[1]):
        print(f"  {value / total * 100:5.1f}%  {name}")
    print(f"top {args.top} instructions:")
    for row in sorted(rows, key=samples, reverse=True)[: args.top]:
        print(f"  {samples(row) / total * 100:5.1f}%  {row['Address']}  {row['Source'].strip()[:90]}")


if __name__ == "__main__":
    main()
