#!/usr/bin/env python3
"""Summarises a scripts/gpu_ab.sh output file: one row per (preset, M), each variant's median time over the
rounds (ms), its spread (min-max), and its ratio to the first variant named on the command line (or the
first variant in the file). A ratio below 1 is faster than the baseline.

Usage: scripts/ab_summary.py AB.txt [BASELINE_LABEL]
"""
import collections
import statistics
import sys


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    times = collections.defaultdict(list)  # (preset, tokens, label) -> [ms]
    labels, cells = [], []
    with open(argv[1]) as lines:
        for line in lines:
            # "r<round> <label> <preset> <backend> <M> <time_ms> ..." (gpu_ab.sh)
            fields = line.split()
            if len(fields) < 6 or not fields[0].startswith("r"):
                continue
            label, preset, tokens, time_ms = fields[1], fields[2], int(fields[4]), float(fields[5])
            if label not in labels:
                labels.append(label)
            if (preset, tokens) not in cells:
                cells.append((preset, tokens))
            times[(preset, tokens, label)].append(time_ms)
    if not labels:
        sys.exit(f"{argv[1]}: no gpu_ab.sh rows")
    baseline = argv[2] if len(argv) > 2 else labels[0]
    if baseline not in labels:
        sys.exit(f"baseline {baseline!r} is not one of {labels}")
    print(f"median ms (min-max) and ratio to {baseline}; rounds per cell: "
          f"{max(len(v) for v in times.values())}")
    print(f"{'preset':<16}{'M':>7}  " + "  ".join(f"{label:>24}" for label in labels))
    for preset, tokens in sorted(cells):
        base = times.get((preset, tokens, baseline))
        base_median = statistics.median(base) if base else None
        row = []
        for label in labels:
            values = times.get((preset, tokens, label))
            if not values:
                row.append(f"{'-':>24}")
                continue
            median = statistics.median(values)
            ratio = f" x{median / base_median:.3f}" if base_median else ""
            row.append(f"{median:.3f} ({min(values):.3f}-{max(values):.3f}){ratio}".rjust(24))
        print(f"{preset:<16}{tokens:>7}  " + "  ".join(row))


if __name__ == "__main__":
    main(sys.argv)
