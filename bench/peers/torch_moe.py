#!/usr/bin/env python3
"""PyTorch MoE peers, timed: what `fusedmoe bench --peer torch` runs side by side. Same shapes, bf16 weights
and activations, uniform random routing with a fixed seed, router not timed. Two methods:
  loop        the Hugging Face-style per-expert loop (index the tokens of each hit expert, two matmuls);
  grouped_mm  torch._grouped_mm: (token, slot) pairs sorted by expert, one grouped GEMM per projection.
Caches are evicted before each run by a read (max(4 x L2, 256 MiB) on a GPU, 256 MiB on the CPU), so no dirty
lines are left to write back during the run. On CUDA each run is timed with CUDA events, eager (the loop reads
counts back to the host, so it cannot be captured in a graph). Prints one JSON object:
{"time_ms": median, "device": ..., "torch": version, "method": ...}."""
import argparse
import json
import time

import torch


def make_inputs(args, device, transposed):
    # Drawn on the device in bf16 (deepseek-v3's 22.5 GB of weights would take minutes on the CPU, and twice
    # that in fp32). `transposed`: the weights as torch._grouped_mm wants them, w13 [E, H, 2I] and w2 [E, I, H]
    # (random values either way, so they are drawn in that layout directly).
    generator = torch.Generator(device=device).manual_seed(0)
    dtype = torch.bfloat16
    scale = args.hidden ** -0.5
    w13_shape = (args.experts, args.hidden, 2 * args.intermediate) if transposed else (
        args.experts, 2 * args.intermediate, args.hidden)
    w2_shape = (args.experts, args.intermediate, args.hidden) if transposed else (
        args.experts, args.hidden, args.intermediate)
    w13 = torch.rand(w13_shape, generator=generator, device=device, dtype=dtype).mul_(scale)
    w2 = torch.rand(w2_shape, generator=generator, device=device, dtype=dtype).mul_(scale)
    x = torch.randn(args.tokens, args.hidden, generator=generator, device=device, dtype=dtype)
    ids = torch.rand(args.tokens, args.experts, generator=generator, device=device).argsort(dim=1)[:, : args.topk]
    weights = torch.rand(args.tokens, args.topk, generator=generator, device=device)
    weights = weights / weights.sum(-1, keepdim=True)
    return w13, w2, x, ids, weights


def loop_forward(w13, w2, x, ids, weights, experts):
    out = torch.zeros_like(x, dtype=torch.float32)
    mask = torch.nn.functional.one_hot(ids, experts).permute(2, 1, 0)
    for expert in torch.nonzero(mask.sum(dim=(1, 2))).flatten().tolist():
        slot, token = torch.where(mask[expert])
        gate_up = x[token] @ w13[expert].T
        gate, up = gate_up.chunk(2, dim=-1)
        h = torch.nn.functional.silu(gate) * up
        out.index_add_(0, token, (h @ w2[expert].T).float() * weights[token, slot, None])
    return out.to(x.dtype)


def grouped_mm_forward(w13_t, w2_t, x, ids, weights, experts):
    # w13_t [E, H, 2I] and w2_t [E, I, H]: each expert's B [K, N], as torch._grouped_mm wants it.
    flat = ids.flatten()
    order = torch.argsort(flat, stable=True)
    token = order // ids.shape[1]
    offsets = torch.cumsum(torch.bincount(flat, minlength=experts), 0).to(torch.int32)
    gate_up = torch._grouped_mm(x[token], w13_t, offs=offsets)
    gate, up = gate_up.chunk(2, dim=-1)
    h = (torch.nn.functional.silu(gate) * up).contiguous()
    rows = torch._grouped_mm(h, w2_t, offs=offsets).float() * weights.flatten()[order, None]
    out = torch.zeros_like(x, dtype=torch.float32)
    out.index_add_(0, token, rows)
    return out.to(x.dtype)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hidden", type=int, required=True)
    parser.add_argument("--intermediate", type=int, required=True)
    parser.add_argument("--experts", type=int, required=True)
    parser.add_argument("--topk", type=int, required=True)
    parser.add_argument("--tokens", type=int, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--method", choices=["loop", "grouped_mm"], default="loop")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.method == "grouped_mm" and not hasattr(torch, "_grouped_mm"):
        raise SystemExit(f"torch {torch.__version__} has no torch._grouped_mm")
    w13, w2, x, ids, weights = make_inputs(args, device, transposed=args.method == "grouped_mm")
    if args.method == "grouped_mm":
        forward = lambda: grouped_mm_forward(w13, w2, x, ids, weights, args.experts)  # noqa: E731
    else:
        forward = lambda: loop_forward(w13, w2, x, ids, weights, args.experts)  # noqa: E731
    cuda = device.type == "cuda"
    # Caches evicted before each run by a read (no dirty lines left), as fusedmoe's bench: max(4 x L2, 256 MiB)
    # on a GPU, 256 MiB on the CPU.
    flush_bytes = max(4 * torch.cuda.get_device_properties(device).L2_cache_size, 256 << 20) if cuda else 256 << 20
    flush = torch.zeros(flush_bytes, dtype=torch.uint8, device=device)

    with torch.no_grad():
        forward()
        times = []
        for _ in range(args.repeats):
            flush.max()
            if cuda:
                start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                forward()
                stop.record()
                stop.synchronize()
                times.append(start.elapsed_time(stop))
            else:
                begin = time.perf_counter()
                forward()
                times.append((time.perf_counter() - begin) * 1e3)
    times.sort()
    print(json.dumps({"time_ms": times[len(times) // 2], "device": str(device), "torch": torch.__version__,
                      "method": args.method}))


if __name__ == "__main__":
    main()
