"""Benchmark: RNA encoder training throughput and peak memory.

For each model preset (``tiny``, the CPU default, and ``base``, the GPU preset) on the device at hand
(CUDA when present, else CPU): training samples/s of the full step (two masked views, eq. 2 + eq. 3-4,
backward, AdamW) on random data of the paper's shape (7 gene groups) and peak memory (CUDA: max allocated;
CPU: peak RSS of this process).

    python benchmarks/bench_rna_encoder.py --out benchmarks/results/bench_rna_encoder.json
"""

from __future__ import annotations

import argparse
import platform
import resource
import time
from pathlib import Path

import numpy as np
import torch

from _common import write_result  # benchmarks/ is on sys.path when a script of it runs
from gb_kedro import rna_encoding as rna
from gb_kedro.models.rna_mae import rna_mae
from gb_kedro.training import resolve_device


def measure(
    preset: str, n_genes: int, n_groups: int, batch: int, steps: int, device: torch.device, threads: int
) -> dict:
    torch.manual_seed(0)
    groups = np.sort(np.random.default_rng(0).integers(0, n_groups, n_genes)).tolist()
    model = rna_mae(groups, preset).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    step = rna.make_step(temperature=0.1, recon_weight=1.0, contrastive_weight=1.0)
    x = torch.randn(batch, n_genes)
    labels = torch.arange(batch)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def one():
        with autocast:
            loss = step(model, (x, labels), device)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):
        one()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        one()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        "preset": preset,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "batch_size": batch,
        "steps": steps,
        "samples_per_s": round(batch * steps / seconds, 1),
        "peak_memory_mb": round(peak, 1),
        "memory_kind": "cuda_max_allocated" if device.type == "cuda" else "process_peak_rss",
        "cpu_threads": threads,
    }


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--genes", type=int, default=2000, help="genes per sample (the demo keeps ~1,800; real data ~19,000)"
    )
    parser.add_argument("--groups", type=int, default=7)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_rna_encoder.json"))
    args = parser.parse_args()
    device = resolve_device(args.device)
    threads = torch.get_num_threads()
    rows = [
        measure(preset, args.genes, args.groups, args.batch, args.steps, device, threads) for preset in ("tiny", "base")
    ]
    result = {
        "benchmark": "rna_encoder_training",
        "device": str(device)
        + (
            f" ({torch.cuda.get_device_name()})"
            if device.type == "cuda"
            else f" ({platform.processor() or platform.machine()})"
        ),
        "torch": torch.__version__,
        "genes": args.genes,
        "groups": args.groups,
        "results": rows,
    }
    return write_result(result, args.out)


if __name__ == "__main__":
    main()
