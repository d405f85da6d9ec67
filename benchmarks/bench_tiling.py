"""Benchmark: tumour-patch selection on one large slide.

Generates (once, cached) a 16384 x 20480 JPEG-tiled pyramidal TIFF with ~50 % tissue and ~20 % tumour,
then measures, each method in its own process (so peak RSS is its own):

- ``a_openslide_ceiling``: ``read_region`` of every level-0 region (256 x 4096 px), no processing;
- ``b_naive``: per-patch ``read_region`` + per-pixel float HSL conversion (the loop a user writes first);
- ``c_tiler_<reader>_<prefilter>_<n>proc``: :func:`gb_kedro.slides.tiling.score_slide` with reader
  ``openslide`` (region reads) or ``tifffile`` (raw JPEG tiles; this TIFF's tiles are the patches), pre-filter
  ``none`` / ``tissue`` / ``brown``, on 1 process or on ``--workers`` processes (rows split between them);
- ``d_raw_tile_loop``: the bare tifffile decode loop + integer colour rule, for reference.

Reported: patches/s over the whole slide grid, decoded MB/s, peak RSS, tumour patches, and agreement of
each method's kept patches with the naive loop's.

    python benchmarks/bench_tiling.py --out benchmarks/results/bench_tiling.json
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from _common import write_result  # benchmarks/ is on sys.path when a script of it runs

PATCH = 256


def make_slide(path: Path, width: int, height: int) -> None:
    from gb_kedro.synthetic.slides import SlideSpec, make_scene, write_pyramid_tiff

    code = {
        "nucleus_size": 0,
        "elongation": 1,
        "arrangement": 0,
        "chromatin_texture": 1,
        "cell_density": 0,
        "invasion": 0,
    }
    spec = SlideSpec("BENCH", "M", "L", "P", code, seed=2024, width=width, height=height)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.tif")
    write_pyramid_tiff(tmp, make_scene(spec))
    tmp.replace(path)


def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM; ru_maxrss would carry the parent's over fork/exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024.0, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def method_a(path: str) -> dict:
    from gb_kedro.slides.tiling import open_slide

    slide = open_slide(path)
    w, h = slide.dimensions
    start, decoded = time.perf_counter(), 0
    for y in range(0, h - h % PATCH, PATCH):
        for x in range(0, w, 16 * PATCH):
            width = min(16 * PATCH, w - x)
            region = slide.read_region((x, y), 0, (width, PATCH))
            decoded += width * PATCH * 3
            del region
    return {"seconds": time.perf_counter() - start, "decoded_bytes": decoded, "kept": None}


def method_b(path: str) -> dict:
    from gb_kedro.slides.color import brown_mask_float
    from gb_kedro.slides.tiling import open_slide

    slide = open_slide(path)
    w, h = slide.dimensions
    start, kept, decoded = time.perf_counter(), [], 0
    for y in range(0, h - h % PATCH, PATCH):
        for x in range(0, w - w % PATCH, PATCH):
            rgb = np.asarray(slide.read_region((x, y), 0, (PATCH, PATCH)).convert("RGB"))
            decoded += rgb.nbytes
            if brown_mask_float(rgb).mean() > 0.2:
                kept.append((x, y))
    return {"seconds": time.perf_counter() - start, "decoded_bytes": decoded, "kept": kept}


def _score_rows(args):
    from gb_kedro.config import base_subtree
    from gb_kedro.slides.tiling import score_slide

    path, prefilter, reader, rows = args
    patches, summary = score_slide(
        path,
        base_subtree(
            "data_engineering.tiling",
            Path(__file__).resolve().parents[1] / "conf" / "base",
            prefilter=prefilter,
            target_mpp=None,
            reader=reader,
        ),
        rows=rows,
    )
    summary["peak_rss_mb"] = _peak_rss_mb()
    return patches, summary


def method_c(path: str, prefilter: str, workers: int, reader: str = "openslide") -> dict:
    from gb_kedro.slides.tiling import open_slide

    slide = open_slide(path)
    n_rows = slide.dimensions[1] // PATCH
    slide.close()
    start = time.perf_counter()
    if workers == 1:
        results = [_score_rows((path, prefilter, reader, None))]
    else:
        bounds = np.linspace(0, n_rows, workers * 4 + 1).astype(int)
        chunks = [(path, prefilter, reader, (int(a), int(b))) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_score_rows, chunks))
    seconds = time.perf_counter() - start
    scored = sum(len(p) for p, _ in results)
    kept = [(int(x), int(y)) for p, _ in results for x, y in p.loc[p["tumour"], ["x", "y"]].to_numpy()]
    worker_rss = max(summary["peak_rss_mb"] for _, summary in results)
    return {
        "seconds": seconds,
        "decoded_bytes": scored * PATCH * PATCH * 3,
        "kept": kept,
        "scored_patches": scored,
        "worker_peak_rss_mb": worker_rss,
    }


def method_d(path: str) -> dict:
    """Decode the level-0 JPEG tiles directly (tifffile + imagecodecs), score with the integer rule."""
    import tifffile

    from gb_kedro.slides.color import brown_mask

    start, kept, decoded = time.perf_counter(), [], 0
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        if page.tilelength != PATCH or page.tilewidth != PATCH:
            raise ValueError("tiles do not align with the patches")
        fh = tif.filehandle
        tiles_across = (page.imagewidth + PATCH - 1) // PATCH
        for k, (offset, count) in enumerate(zip(page.dataoffsets, page.databytecounts, strict=True)):
            fh.seek(offset)
            data = fh.read(count)
            tile, _, _ = page.decode(data, k, jpegtables=page.jpegtables)
            rgb = tile[0]
            decoded += rgb.nbytes
            if brown_mask(rgb).mean() > 0.2:
                kept.append(((k % tiles_across) * PATCH, (k // tiles_across) * PATCH))
    return {"seconds": time.perf_counter() - start, "decoded_bytes": decoded, "kept": kept}


def run_child(method: str, path: str, workers: int) -> dict:
    if method == "a":
        result = method_a(path)
    elif method == "b":
        result = method_b(path)
    elif method == "d":
        result = method_d(path)
    else:
        _, prefilter, reader = method.split(":")
        result = method_c(path, prefilter, workers, reader)
    result["peak_rss_mb"] = max(_peak_rss_mb(), result.pop("worker_peak_rss_mb", 0.0))
    return result


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=16384)
    parser.add_argument("--height", type=int, default=20480)
    parser.add_argument("--slide", type=Path, default=Path("benchmarks/results/bench_slide_16384x20480.tif"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-naive", action="store_true", help="skip (b), the slowest method")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_tiling.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(run_child(args.child, str(args.slide), args.workers)))
        return {}

    if not args.slide.exists():
        start = time.perf_counter()
        make_slide(args.slide, args.width, args.height)
        print(f"generated {args.slide} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    from gb_kedro.slides.tiling import open_slide

    slide = open_slide(args.slide)
    grid = (slide.dimensions[0] // PATCH) * (slide.dimensions[1] // PATCH)
    slide.close()

    plan = [("a_openslide_ceiling", "a", 1)]
    if not args.skip_naive:
        plan.append(("b_naive", "b", 1))
    for prefilter in ("none", "tissue", "brown"):
        plan.append((f"c_tiler_openslide_{prefilter}_1proc", f"c:{prefilter}:openslide", 1))
    plan.append((f"c_tiler_openslide_tissue_{args.workers}proc", "c:tissue:openslide", args.workers))
    plan.append((f"c_tiler_openslide_brown_{args.workers}proc", "c:brown:openslide", args.workers))
    for prefilter in ("none", "tissue"):
        plan.append((f"c_tiler_tifffile_{prefilter}_1proc", f"c:{prefilter}:tifffile", 1))
        plan.append((f"c_tiler_tifffile_{prefilter}_{args.workers}proc", f"c:{prefilter}:tifffile", args.workers))
    plan.append(("d_raw_tile_loop_1proc", "d", 1))

    results: dict[str, dict] = {}
    for name, method, workers in plan:
        cmd = [sys.executable, __file__, "--child", method, "--slide", str(args.slide), "--workers", str(workers)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        results[name] = r
        print(f"{name}: {grid / r['seconds']:.0f} patches/s", file=sys.stderr)

    reference = (
        set(map(tuple, results["b_naive"]["kept"]))
        if "b_naive" in results
        else set(map(tuple, results["c_tiler_openslide_none_1proc"]["kept"]))
    )
    report = {}
    for name, r in results.items():
        entry = {
            "seconds": round(r["seconds"], 2),
            "patches_per_s": round(grid / r["seconds"], 1),
            "decoded_mb_per_s": round(r["decoded_bytes"] / 1e6 / r["seconds"], 1),
            "peak_rss_mb": r["peak_rss_mb"],
        }
        if r.get("kept") is not None:
            kept = set(map(tuple, r["kept"]))
            entry.update(
                {
                    "tumour_patches": len(kept),
                    "missed_vs_naive": len(reference - kept),
                    "extra_vs_naive": len(kept - reference),
                    "recall_vs_naive": round(len(kept & reference) / max(len(reference), 1), 5),
                }
            )
        if "scored_patches" in r:
            entry["scored_patches"] = r["scored_patches"]
        report[name] = entry
    naive = report.get("b_naive", {}).get("patches_per_s")
    best = max(v["patches_per_s"] for k, v in report.items() if k.startswith("c_"))
    result = {
        "benchmark": "tiling",
        "slide": {"path": str(args.slide), "width": args.width, "height": args.height, "grid_patches": grid},
        "machine": {"python": platform.python_version(), "cpu_count": __import__("os").cpu_count()},
        "methods": report,
        "speedup_best_tiler_vs_naive": round(best / naive, 1) if naive else None,
    }
    return write_result(result, args.out)


if __name__ == "__main__":
    main()
