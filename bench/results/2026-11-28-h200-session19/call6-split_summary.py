#!/usr/bin/env python3
# Per preset and M of `fusedmoe tune --json` runs: the table's choice (builtin, given), the best one-tile
# choice and the best two-tile choice ("<GEMM1>/<GEMM2>"), with their times.
import json, sys
builtin = {("qwen3-30b-a3b", 1): "m16_n64_k128", ("qwen3-30b-a3b", 8): "m16", ("qwen3-30b-a3b", 64): "m16",
           ("olmoe-1b-7b", 1): "m16_n64_s8", ("olmoe-1b-7b", 8): "m32", ("olmoe-1b-7b", 64): "m16_n128_k128",
           ("mixtral-8x7b", 1): "m16_n64_k128", ("mixtral-8x7b", 8): "m32", ("mixtral-8x7b", 64): "wg64_n128",
           ("deepseek-v3", 1): "m16_n128_k128", ("deepseek-v3", 8): "m16_n128_k128", ("deepseek-v3", 64): "wg64_n128"}
cells = {}
for path in sys.argv[1:]:
    for line in open(path):
        if not line.startswith("{"): continue
        r = json.loads(line)
        if not r.get("passed"): print("FAILED", r); continue
        cells.setdefault((r["preset"], r["tokens"]), {})[r["choice"]] = r["time_ms"]
for (preset, m), times in sorted(cells.items()):
    single = {k: v for k, v in times.items() if "/" not in k}
    split = {k: v for k, v in times.items() if "/" in k}
    table = builtin.get((preset, m))
    tt = times.get(table)
    bs = min(single, key=single.get)
    line = f"{preset:14} M={m:<4} table {table} {tt:.4f}" if tt else f"{preset:14} M={m:<4} table ?"
    line += f" | best one {bs} {single[bs]:.4f}"
    if split:
        bp = min(split, key=split.get)
        line += f" | best two {bp} {split[bp]:.4f} x{split[bp] / (tt or single[bs]):.3f}"
        top = sorted(split.items(), key=lambda kv: kv[1])[:3]
        line += " | next " + ", ".join(f"{k} {v:.4f}" for k, v in top[1:])
    print(line)
