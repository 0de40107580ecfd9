#!/usr/bin/env python3
"""Summarises `fusedmoe tune --json` output against the built-in tune table.

For each preset and token count it prints the built-in table's choice for that card (read from
src/backends/cuda_fused/builtin_tune_tables.cpp) with its time in this run, the fastest one-tile
choice and the fastest two-tile choice ("<GEMM1 tile>/<GEMM2 tile>"). Each gets its ratio to the
table's time. Choices that failed the fp64 check are listed.

Usage: scripts/tune_summary.py TUNE_OUTPUT...   (JSON lines, one per candidate, as `tune --json` prints)
"""
import json
import pathlib
import sys

PRESET_SHAPES = {  # (experts, hidden, intermediate, top_k) -> preset, as in src/cli/presets.cpp
    (128, 2048, 768, 8): "qwen3-30b-a3b",
    (64, 2048, 1024, 8): "olmoe-1b-7b",
    (8, 4096, 14336, 2): "mixtral-8x7b",
    (256, 7168, 2048, 8): "deepseek-v3",
}


def builtin_tables():
    """{(device, preset): [(max_tokens, choice), ...]} from the built-in tables' JSON."""
    source = pathlib.Path(__file__).resolve().parent.parent / "src/backends/cuda_fused/builtin_tune_tables.cpp"
    text = source.read_text()
    tables = {}
    start = 0
    while (begin := text.find('R"json(', start)) >= 0:
        end = text.index(')json"', begin)
        for entry in json.loads(text[begin + len('R"json('):end])["entries"]:
            shape = (entry["experts"], entry["hidden"], entry["intermediate"], entry["top_k"])
            if shape in PRESET_SHAPES:
                buckets = [(b["max_tokens"], b["choice"]) for b in entry["buckets"]]
                tables[(entry["device"], PRESET_SHAPES[shape])] = buckets
        start = end
    return tables


def table_choice(buckets, tokens):
    for max_tokens, choice in buckets:
        if tokens <= max_tokens:
            return choice
    return buckets[-1][1] if buckets else None


def main(paths):
    tables = builtin_tables()
    cells = {}
    for path in paths:
        for line in open(path):
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            if not record.get("passed", False):
                print(f"FAILED fp64 check: {record}")
                continue
            key = (record["device"], record["preset"], record["tokens"])
            cells.setdefault(key, {})[record["choice"]] = record["time_ms"]
    for (device, preset, tokens), times in sorted(cells.items()):
        choice = table_choice(tables.get((device, preset), []), tokens)
        base = times.get(choice)
        line = f"{preset:14} M={tokens:<6} table {choice} " + (f"{base:.4f}" if base else "(not timed)")
        for label, group in (("one", {c: t for c, t in times.items() if "/" not in c}),
                             ("two", {c: t for c, t in times.items() if "/" in c})):
            if group:
                best = min(group, key=group.get)
                ratio = f" x{group[best] / base:.3f}" if base else ""
                line += f" | best {label} {best} {group[best]:.4f}{ratio}"
        print(line)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
