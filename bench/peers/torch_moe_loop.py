#!/usr/bin/env python3
"""The Hugging Face-style per-expert MoE loop in PyTorch, timed: the peer `fusedmoe bench --peer torch` runs
side by side. Same shapes, bf16 weights and activations, uniform random routing with a fixed seed, router not
timed. Prints one JSON object: {"time_ms": median, "device": ..., "torch": version}."""
import argparse
import json
import time

import torch


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
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    generator = torch.Generator().manual_seed(0)
    dtype = torch.bfloat16
    scale = args.hidden ** -0.5
    w13 = (torch.rand(args.experts, 2 * args.intermediate, args.hidden, generator=generator) * scale).to(dtype).to(device)
    w2 = (torch.rand(args.experts, args.hidden, args.intermediate, generator=generator) * scale).to(dtype).to(device)
    x = torch.randn(args.tokens, args.hidden, generator=generator).to(dtype).to(device)
    ids = torch.stack([torch.randperm(args.experts, generator=generator)[: args.topk] for _ in range(args.tokens)])
    weights = torch.rand(args.tokens, args.topk, generator=generator)
    weights = (weights / weights.sum(-1, keepdim=True)).to(device)
    ids = ids.to(device)

    def forward() -> torch.Tensor:
        out = torch.zeros_like(x, dtype=torch.float32)
        mask = torch.nn.functional.one_hot(ids, args.experts).permute(2, 1, 0)
        for expert in torch.nonzero(mask.sum(dim=(1, 2))).flatten().tolist():
            slot, token = torch.where(mask[expert])
            gate_up = x[token] @ w13[expert].T
            gate, up = gate_up.chunk(2, dim=-1)
            h = torch.nn.functional.silu(gate) * up
            out.index_add_(0, token, (h @ w2[expert].T).float() * weights[token, slot, None])
        return out.to(dtype)

    with torch.no_grad():
        forward()
        times = []
        for _ in range(args.repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            forward()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    print(json.dumps({"time_ms": times[len(times) // 2], "device": str(device), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
