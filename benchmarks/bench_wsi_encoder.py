"""Benchmark: WSI encoder training throughput, data loading included.

Renders (once, cached) a few synthetic slides, then trains the ViT on their patches read LAZILY from the
slides through ``PatchDataset`` + ``DataLoader`` workers (no cache), with the demo's step (lineage softmax +
batch-hard triplet) for each preset: ``tiny`` at 128 px (the CPU default) and ``small`` (ViT-S/16) at 256 px.
Reports training patches/s, the share of wall time spent waiting for data, and peak memory (CUDA max
allocated, else peak RSS), on the device at hand.

    python benchmarks/bench_wsi_encoder.py --out benchmarks/results/bench_wsi_encoder.json
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import pandas as pd
import torch

from _common import write_result  # benchmarks/ is on sys.path when a script of it runs
from gb_kedro.models.vit import vit
from gb_kedro.slides.augment import Augment
from gb_kedro.slides.dataset import PatchDataset
from gb_kedro.slides.sampling import PKSampler
from gb_kedro.training import resolve_device
from gb_kedro.wsi_encoding import TripletStep

CODES = [
    {"nucleus_size": -1, "elongation": 1, "arrangement": 0, "chromatin_texture": 1, "cell_density": 0, "invasion": 0},
    {"nucleus_size": 1, "elongation": -1, "arrangement": 1, "chromatin_texture": -1, "cell_density": 1, "invasion": -1},
    {"nucleus_size": 0, "elongation": 0, "arrangement": -1, "chromatin_texture": 0, "cell_density": -1, "invasion": 0},
    {"nucleus_size": 1, "elongation": 1, "arrangement": 1, "chromatin_texture": 1, "cell_density": 1, "invasion": -1},
]


def slides(folder: Path, size: int) -> tuple[pd.DataFrame, dict]:
    from gb_kedro.config import base_subtree
    from gb_kedro.slides.tiling import score_slide
    from gb_kedro.synthetic.slides import SlideSpec, make_scene, write_pyramid_tiff

    folder.mkdir(parents=True, exist_ok=True)
    rows, paths = [], {}
    for k, code in enumerate(CODES):
        path = folder / f"bench_wsi_{k}_{size}.tif"
        if not path.exists():
            write_pyramid_tiff(
                path, make_scene(SlideSpec(f"S{k}", f"M{k}", f"L{k}", "P", code, seed=100 + k, width=size, height=size))
            )
        patches, _ = score_slide(
            path,
            base_subtree(
                "data_engineering.tiling", Path(__file__).resolve().parents[1] / "conf" / "base", target_mpp=None
            ),
        )
        tumour = patches[patches["tumour"]].assign(slide_id=f"S{k}", lineage_id=f"L{k}")
        rows.append(tumour)
        paths[f"S{k}"] = str(path)
    return pd.concat(rows, ignore_index=True), paths


def measure(index, paths, preset: str, px: int, batches: int, workers: int, device) -> dict:
    torch.manual_seed(0)
    lineages = sorted(index["lineage_id"].unique())
    data = PatchDataset(index, paths, label_column="lineage_id", output_size=px, transform=Augment(True, 0.15, 0.03))
    labels = index["lineage_id"].map({lab: i for i, lab in enumerate(lineages)}).to_numpy()
    model = vit(preset, img_size=px, num_classes=len(lineages)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    step = TripletStep(margin=0.3, warmup_epochs=0, ce_weight=1.0, scale=16.0)
    loader = torch.utils.data.DataLoader(
        data, batch_sampler=PKSampler(labels, p=4, k=8, seed=0), num_workers=workers, persistent_workers=workers > 0
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seen, waiting, start = 0, 0.0, None
    it = iter(loader)
    for b in range(batches + 2):
        t0 = time.perf_counter()
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(loader)
            x, y = next(it)
        t1 = time.perf_counter()
        autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if device.type == "cuda"
            else torch.autocast("cpu", enabled=False)
        )
        with autocast:
            loss = step(model, (x, y), device)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if b == 2:  # two warm-up batches
            start, seen, waiting = t0, 0, 0.0
        if start is not None:
            seen += len(y)
            waiting += t1 - t0
    seconds = time.perf_counter() - start
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        "preset": preset,
        "input_px": px,
        "tokens": (px // 16) ** 2,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "batch": 32,
        "loader_workers": workers,
        "patches_per_s": round(seen / seconds, 1),
        "data_wait_share": round(waiting / seconds, 3),
        "peak_memory_mb": round(peak, 1),
        "memory_kind": "cuda_max_allocated" if device.type == "cuda" else "process_peak_rss",
    }


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slide-size", type=int, default=3072)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--cache-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_wsi_encoder.json"))
    args = parser.parse_args()
    device = resolve_device(args.device)
    index, paths = slides(args.cache_dir, args.slide_size)
    rows = [
        measure(index, paths, "tiny", 128, args.batches, args.workers, device),
        measure(index, paths, "small", 256, max(2, args.batches // 4), args.workers, device),
    ]
    result = {
        "benchmark": "wsi_encoder_training",
        "device": str(device),
        "torch": torch.__version__,
        "tumour_patches": int(len(index)),
        "cpu_threads": torch.get_num_threads(),
        "results": rows,
    }
    return write_result(result, args.out)


if __name__ == "__main__":
    main()
