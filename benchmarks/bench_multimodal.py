"""Benchmark: multimodal training pairs/s and evaluation (retrieval) patches/s.

Builds the multimodal model from freshly initialised encoders at the demo's sizes (``default``: RNA tiny,
ViT tiny on 128-px windows, fusion 2 layers) and a GPU-sized one (``large``: RNA base, ViT-S/16 on 256 px,
fusion 4 layers), feeds it in-memory pairs (uint8 patches of 256 px + RNA vectors of 2,000 genes in 7
groups; batches of 8 lineages x 4 patches) and times (a) training steps of the full loss (ITC + ITM with
hard negatives + reconstruction) and (b) evaluation: projected image embeddings of 256-px patches (mean
over the windows) + eq. 9 retrieval against 51 RNA samples. Peak memory: CUDA max allocated, else peak RSS.

    python benchmarks/bench_multimodal.py --out benchmarks/results/bench_multimodal.json
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
import torch

from _common import write_result  # benchmarks/ is on sys.path when a script of it runs
from gb_kedro import multimodal as mm
from gb_kedro.config import PatchesConfig, base_subtree
from gb_kedro.evaluation import retrieval
from gb_kedro.models.multimodal import MultimodalModel
from gb_kedro.models.rna_mae import rna_mae
from gb_kedro.models.vit import vit
from gb_kedro.slides.patches import windows
from gb_kedro.training import resolve_device

SIZES = {
    "default": {
        "rna": "tiny",
        "vit": "tiny",
        "crop": 128,
        "fusion": {"embed_dim": 64, "fusion_depth": 2, "fusion_heads": 4},
    },
    "large": {
        "rna": "base",
        "vit": "small",
        "crop": None,
        "fusion": {"embed_dim": 256, "fusion_depth": 4, "fusion_heads": 8},
    },
}


def measure(name: str, batches: int, n_genes: int, device: torch.device) -> dict:
    spec = SIZES[name]
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    groups = rng.integers(7, size=n_genes).tolist()
    img_px = spec["crop"] or 256
    model = MultimodalModel.from_encoders(
        rna_mae(groups, spec["rna"]), vit(spec["vit"], img_size=img_px), **spec["fusion"]
    ).to(device)
    step = mm.MultimodalStep(
        temperature=0.07, itc_weight=1.0, itm_weight=1.0, recon_weight=1.0, mask_rna=True, gene_dropout=0.3
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    labels = torch.arange(8).repeat_interleave(4)
    rna_bank = torch.randn(8, n_genes)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    )
    seen, start = 0, None
    for b in range(batches + 2):
        images = torch.rand(len(labels), 3, img_px, img_px)
        t0 = time.perf_counter()
        with autocast:
            loss = step(model, (images, rna_bank[labels], labels), device)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if b == 2:
            start, seen = t0, 0
        if start is not None:
            seen += len(labels)
    train_rate = seen / (time.perf_counter() - start)
    patches = rng.integers(0, 256, size=(max(64, batches * 16), 3, 256, 256), dtype=np.uint8)
    rna = rng.normal(size=(51, n_genes)).astype(np.float32)
    views = PatchesConfig.from_dict(
        {
            **base_subtree("patches"),
            "mode": "crop" if spec["crop"] else "downsample",
            "model_px": spec["crop"] or 256,
            "read_px": 256,
        }
    )  # the configured test views and batch size (conf/base patches)
    mm.embed_images(model, patches[:8], views, device=device)  # warm-up
    t0 = time.perf_counter()
    z = mm.embed_images(model, patches, views, device=device)
    retrieval(z, mm.embed_rna(model, rna, 256, device=device), top=5)
    eval_rate = len(patches) / (time.perf_counter() - t0)
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        "sizes": name,
        "image_px_fed": img_px,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "batch": len(labels),
        "train_pairs_per_s": round(train_rate, 1),
        "eval_patches_per_s": round(eval_rate, 1),
        "eval_windows_per_patch": len(windows(torch.zeros(1, 3, 256, 256), spec["crop"])),
        "eval_test_views": views.test_views,
        "peak_memory_mb": round(peak, 1),
        "memory_kind": "cuda_max_allocated" if device.type == "cuda" else "process_peak_rss",
    }


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_multimodal.json"))
    args = parser.parse_args()
    device = resolve_device(args.device)
    rows = [
        measure("default", args.batches, args.genes, device),
        measure("large", max(2, args.batches // 4), args.genes, device),
    ]
    result = {
        "benchmark": "multimodal",
        "device": str(device),
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "results": rows,
    }
    return write_result(result, args.out)


if __name__ == "__main__":
    main()
