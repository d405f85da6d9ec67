"""Benchmark: a paper-size cohort tiled slide by slide on a local process pool and on Dask, resume, and
data-parallel training throughput.

- Renders once (cached in ``benchmarks/results/``) one 16384 x 20480 JPEG-tiled pyramidal TIFF (~50 % tissue,
  ~20 % tumour) and links it as ``--slides`` (116) slides, the size of the paper's cohort;
- tiles them with the pipeline's per-slide unit of work (:func:`gb_kedro.slides.tiling.process_slide`, one
  HDF5 store per slide) on ``local`` (a process pool of ``--workers``) and on ``dask`` (a ``LocalCluster`` of
  ``--workers`` processes x 1 thread), each into its own empty store folder: slides/s, patches/s over the
  slides' grids, peak RSS per worker, and that both give the same patch index;
- reruns ``local`` on its complete stores (resume: every slide skipped);
- trains a small ViT (the WSI encoder's architecture, 64-px patches) with the triplet loss for a few epochs
  at ``world_size`` 1 and 2 (gloo, CPU): samples/s. On 2 cores two ranks do not speed up: each gets one core.

    python benchmarks/bench_scale.py --out benchmarks/results/bench_scale.json
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import sys
import time
from pathlib import Path

from _common import write_result  # benchmarks/ is on sys.path when a script of it runs
from bench_tiling import make_slide


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024.0, 1)
    return float("nan")


def measured_slide(job: tuple) -> dict:
    """The pipeline's unit of work, plus the worker's pid and peak RSS."""
    from gb_kedro.slides.tiling import process_slide

    row = process_slide(job)
    return {**row, "pid": os.getpid(), "peak_rss_mb": _peak_rss_mb()}


def tile(paths: list[Path], store: Path, executor: str, workers: int) -> dict:
    import pandas as pd

    from gb_kedro.config import TilingOptions, base_subtree
    from gb_kedro.datasets.patch_store import PatchStore
    from gb_kedro.slides.fanout import map_slides

    opts = TilingOptions.from_dict(base_subtree("data_engineering.tiling"))
    jobs = [(p.stem, str(p), opts, "raise", str(store)) for p in paths]
    start = time.perf_counter()
    rows = list(map_slides(measured_slide, jobs, executor, workers, desc=f"{executor}"))
    seconds = time.perf_counter() - start
    frame = pd.DataFrame(rows)
    grid = int(frame["grid_patches"].sum())
    per_worker = frame.groupby("pid")["peak_rss_mb"].max()
    index = pd.concat(
        [PatchStore(store).read_patches(s)[0].assign(slide_id=s) for s in sorted(frame["slide_id"])], ignore_index=True
    )
    return {
        "seconds": round(seconds, 2),
        "slides_per_s": round(len(paths) / seconds, 2),
        "patches_per_s": round(grid / seconds, 1),
        "grid_patches": grid,
        "tumour_patches": int(frame["tumour_patches"].sum()),
        "slides_resumed": int(frame["resumed"].sum()),
        "workers_seen": int(len(per_worker)),
        "peak_rss_mb_per_worker": per_worker.round(1).tolist(),
        "_index": index,
    }


class TripletOnly:
    """The WSI encoder's triplet step (eq. 6) on the CLS embedding (picklable: the ranks receive it)."""

    def __call__(self, model, batch, device, gather=False):
        from gb_kedro.losses import batch_hard_triplet

        x, y = (t.to(device) for t in batch)
        return {"loss": batch_hard_triplet(model(x)["cls"], y, 0.3, gather=gather)}


def train_throughput(world: int, epochs: int, n: int) -> dict:
    import torch
    from torch.utils.data import TensorDataset

    from gb_kedro.config import DistributedSettings, TrainSettings, ViTSettings, base_subtree
    from gb_kedro.models.vit import vit
    from gb_kedro.training import TrainConfig, fit

    settings = TrainSettings.from_dict(base_subtree("wsi_encoding.train"))
    config = TrainConfig.of(settings, seed=0, device="cpu")
    config = dataclasses.replace(
        config,
        epochs=epochs,
        batch_size=32,
        patience=0,
        distributed=DistributedSettings(world_size=world, backend="gloo"),
    )
    torch.manual_seed(0)
    model = vit(ViTSettings.from_dict(base_subtree("wsi_encoding.model")).preset, img_size=64)
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.rand(n, 3, 64, 64, generator=g), torch.arange(n) % 8)
    start = time.perf_counter()
    fit(model, data, None, TripletOnly(), config)
    seconds = time.perf_counter() - start
    return {"world_size": world, "seconds": round(seconds, 2), "samples_per_s": round(n * epochs / seconds, 1)}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slides", type=int, default=116)
    parser.add_argument("--width", type=int, default=16384)
    parser.add_argument("--height", type=int, default=20480)
    parser.add_argument("--slide", type=Path, default=Path("benchmarks/results/bench_slide_16384x20480.tif"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("benchmarks/results/scale"))
    parser.add_argument("--train-epochs", type=int, default=3)
    parser.add_argument("--train-samples", type=int, default=1024)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_scale.json"))
    args = parser.parse_args()

    if not args.slide.exists():
        start = time.perf_counter()
        make_slide(args.slide, args.width, args.height)
        print(f"rendered {args.slide} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    shutil.rmtree(args.work, ignore_errors=True)
    (args.work / "slides").mkdir(parents=True)
    paths = []
    for i in range(args.slides):
        path = args.work / "slides" / f"slide_{i:03d}.tif"
        os.link(args.slide, path)  # the same bytes under 116 names: each slide is opened and tiled on its own
        paths.append(path)

    local = tile(paths, args.work / "stores_local", "local", args.workers)
    print(f"local: {local['slides_per_s']} slides/s", file=sys.stderr)
    dask = tile(paths, args.work / "stores_dask", "dask", args.workers)
    print(f"dask: {dask['slides_per_s']} slides/s", file=sys.stderr)
    resume = tile(paths, args.work / "stores_local", "local", args.workers)
    same = local.pop("_index").equals(dask.pop("_index"))
    resume.pop("_index")
    training = [train_throughput(w, args.train_epochs, args.train_samples) for w in (1, 2)]
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "cohort": {"slides": args.slides, "width": args.width, "height": args.height},
        "tiling_local": local,
        "tiling_dask": dask,
        "dask_over_local_throughput": round(dask["slides_per_s"] / local["slides_per_s"], 3),
        "identical_patch_index": bool(same),
        "resume_all_complete": {k: resume[k] for k in ("seconds", "slides_resumed")},
        "training_cpu": training,
    }
    shutil.rmtree(args.work, ignore_errors=True)
    return write_result(result, args.out)


if __name__ == "__main__":
    main()
