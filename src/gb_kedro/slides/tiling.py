"""Streaming tumour-patch selection on whole-slide images (OpenSlide).

For one slide: choose the pyramid level closest to ``target_mpp``; lay a grid of non-overlapping
``size`` x ``size`` patches on it; pre-filter with a low-resolution thumbnail (skip glass, optionally
skip patches with almost no brown); read the remaining patches row by row in wide regions (runs of
adjacent candidates, capped at ``max_region_patches``), score every pixel with the exact integer HSL rule
of :mod:`gb_kedro.slides.color`, and keep patches whose brown ratio exceeds ``threshold``.
Memory is one region (``size`` x ``max_region_patches * size`` RGBA) plus the thumbnail, whatever the
slide size. Slides run in parallel processes (``n_workers``).
"""

from __future__ import annotations

import logging
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from gb_kedro.config import Config, choice
from gb_kedro.datasets.slides import open_slide
from gb_kedro.errors import InputDataError
from gb_kedro.slides.color import brown_mask, patch_brown_ratios, tissue_mask

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TilingOptions(Config):
    """Parameters of tumour-patch selection (``params:data_engineering.tiling``; documented there)."""

    SOURCE: ClassVar[str] = "conf/base/parameters_data_engineering.yml"
    KEY: ClassVar[str] = "data_engineering.tiling"
    size: int
    target_mpp: float | None
    mpp_tolerance: float
    threshold: float
    hue_centre: float
    hue_margin: float
    lightness_min: float
    lightness_max: float
    prefilter: str
    prefilter_brown_min: float
    thumbnail_px_per_patch: int
    tissue_max_min_channel: int
    max_region_patches: int
    reader: str

    def __post_init__(self):
        choice(self.prefilter, ("none", "tissue", "brown"), f"{self.KEY}.prefilter", self.SOURCE)
        choice(self.reader, ("auto", "openslide", "tifffile"), f"{self.KEY}.reader", self.SOURCE)

    @property
    def thresholds(self) -> dict:
        return {
            "hue_centre": self.hue_centre,
            "hue_margin": self.hue_margin,
            "lightness": (self.lightness_min, self.lightness_max),
        }


def slide_mpp(slide) -> float | None:
    """Microns per pixel at level 0: from ``openslide.mpp-x``, else from the objective power (10x ~ 1 um/px)."""
    props = slide.properties
    for key in ("openslide.mpp-x", "openslide.mpp-y"):
        try:
            value = float(props.get(key, "nan"))
        except ValueError:
            continue
        if value > 0:
            return value
    try:
        power = float(props.get("openslide.objective-power", "nan"))
    except ValueError:
        power = float("nan")
    return 10.0 / power if power > 0 else None


def choose_level(slide, target_mpp: float | None, tolerance: float) -> tuple[int, float | None]:
    """The coarsest level whose mpp is at most ``target_mpp * (1 + tolerance)``; level 0 when the slide
    has no resolution information (with a warning) or when ``target_mpp`` is None."""
    mpp0 = slide_mpp(slide)
    if target_mpp is None:
        return 0, mpp0
    if mpp0 is None:
        warnings.warn("slide has no microns-per-pixel or objective power: tiling level 0", stacklevel=2)
        return 0, None
    best = 0
    for level, ds in enumerate(slide.level_downsamples):
        if mpp0 * ds <= target_mpp * (1 + tolerance):
            best = level
    if mpp0 > target_mpp * (1 + tolerance):
        warnings.warn(
            f"level 0 ({mpp0:.3f} um/px) is coarser than target_mpp {target_mpp}: tiling level 0", stacklevel=2
        )
    return best, mpp0 * slide.level_downsamples[best]


def _thumbnail(slide, level: int, opts: TilingOptions) -> tuple[np.ndarray, float]:
    """RGB thumbnail with ``thumbnail_px_per_patch`` px per patch side, and its scale (level-0 px per thumb px)."""
    ds = slide.level_downsamples[level]
    scale = opts.size * ds / opts.thumbnail_px_per_patch
    w0, h0 = slide.dimensions
    thumb = slide.get_thumbnail((max(1, int(round(w0 / scale))), max(1, int(round(h0 / scale)))))
    return np.asarray(thumb.convert("RGB")), w0 / thumb.size[0]


def candidate_grid(slide, level: int, opts: TilingOptions) -> tuple[np.ndarray, dict]:
    """Boolean [rows, cols] of the patches to read, and counts. ``tissue``: any tissue pixel in the
    patch's thumbnail footprint (dilated by one thumbnail pixel); ``brown``: also a thumbnail brown ratio
    of at least ``prefilter_brown_min``; ``none``: every patch."""
    w, h = slide.level_dimensions[level]
    rows, cols = h // opts.size, w // opts.size
    all_patches = np.ones((rows, cols), bool)
    if opts.prefilter == "none" or rows == 0 or cols == 0:
        return all_patches, {"grid_patches": int(rows * cols), "candidate_patches": int(rows * cols)}
    if opts.prefilter not in ("tissue", "brown"):
        raise ValueError(f"unknown prefilter {opts.prefilter!r}: use none, tissue or brown")
    thumb, scale = _thumbnail(slide, level, opts)
    ds = slide.level_downsamples[level]
    step = opts.size * ds / scale  # thumbnail px per patch
    tissue = tissue_mask(thumb, opts.tissue_max_min_channel)
    brown = brown_mask(thumb, **opts.thresholds) if opts.prefilter == "brown" else None
    keep = np.zeros((rows, cols), bool)
    th, tw = tissue.shape
    for r in range(rows):
        y0, y1 = max(int(np.floor(r * step)) - 1, 0), min(int(np.ceil((r + 1) * step)) + 1, th)
        for c in range(cols):
            x0, x1 = max(int(np.floor(c * step)) - 1, 0), min(int(np.ceil((c + 1) * step)) + 1, tw)
            if not tissue[y0:y1, x0:x1].any():
                continue
            if brown is not None and brown[y0:y1, x0:x1].mean() < opts.prefilter_brown_min:
                continue
            keep[r, c] = True
    return keep, {"grid_patches": int(rows * cols), "candidate_patches": int(keep.sum())}


class TileReader:
    """Reads patches as raw TIFF tiles with tifffile/imagecodecs (several times OpenSlide's throughput).

    Only for a TIFF level stored as tiles of exactly the patch size (so tile (r, c) is patch (r, c)),
    3-sample RGB or JPEG-YCbCr; :meth:`for_level` returns None otherwise and OpenSlide is used.
    """

    def __init__(self, tif, page):
        self._tif, self._page = tif, page
        self._across = (page.imagewidth + page.tilewidth - 1) // page.tilewidth

    @classmethod
    def for_level(cls, path, width: int, height: int, size: int) -> TileReader | None:
        import tifffile

        try:
            tif = tifffile.TiffFile(path)
        except Exception:  # not a TIFF (or not one tifffile reads): OpenSlide handles it
            return None
        for page in tif.pages:
            ok = (
                page.is_tiled
                and page.tilewidth == size
                and page.tilelength == size
                and page.imagewidth == width
                and page.imagelength == height
                and page.samplesperpixel == 3
                and page.tiledepth == 1
                and (page.photometric == 2 or (page.photometric == 6 and page.compression == 7))
            )
            if ok:
                return cls(tif, page)
        tif.close()
        return None

    def read(self, row: int, col: int) -> np.ndarray:
        k = row * self._across + col
        fh = self._tif.filehandle
        fh.seek(self._page.dataoffsets[k])
        data = fh.read(self._page.databytecounts[k])
        tile, _, _ = self._page.decode(data, k, jpegtables=self._page.jpegtables)
        return tile[0, :, :, :3]

    def close(self) -> None:
        self._tif.close()


def _runs(row: np.ndarray, cap: int):
    """(start, length) of runs of True in a boolean row, each at most ``cap`` long."""
    idx = np.flatnonzero(row)
    if idx.size == 0:
        return
    start = prev = idx[0]
    for i in idx[1:]:
        if i != prev + 1 or i - start >= cap:
            yield start, prev - start + 1
            start = i
        prev = i
    yield start, prev - start + 1


def score_slide(
    path: str | Path, options: TilingOptions | dict, slide_id: str | None = None, rows: tuple[int, int] | None = None
) -> tuple[pd.DataFrame, dict]:
    """Brown ratio of the candidate patches of one slide.

    Returns ``(patches, summary)``: one row per scored patch (``x``, ``y`` in level-0 px, ``level``,
    ``size``, ``brown_ratio``, ``tumour``) and a summary (level, mpp, counts, seconds).
    ``rows`` restricts to a range of patch rows (to split one slide between workers).
    """
    opts = options if isinstance(options, TilingOptions) else TilingOptions.from_dict(options)
    start = time.perf_counter()
    slide = open_slide(path, slide_id)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            level, mpp = choose_level(slide, opts.target_mpp, opts.mpp_tolerance)
        for w in caught:
            logger.warning("%s: %s", slide_id or path, w.message)
        keep, counts = candidate_grid(slide, level, opts)
        ds = slide.level_downsamples[level]
        size = opts.size
        r0, r1 = rows if rows is not None else (0, keep.shape[0])
        out_x, out_y, out_ratio = [], [], []
        if opts.reader not in ("auto", "openslide", "tifffile"):
            raise ValueError(f"unknown reader {opts.reader!r}: use auto, openslide or tifffile")
        tiles = None
        if opts.reader != "openslide":
            tiles = TileReader.for_level(path, *slide.level_dimensions[level], size)
            if tiles is None and opts.reader == "tifffile":
                raise ValueError(
                    f"{path}: level {level} is not stored as {size}x{size} RGB tiles; use reader: openslide or auto"
                )
        for r in range(r0, min(r1, keep.shape[0])) if tiles is not None else ():
            for c in np.flatnonzero(keep[r]):
                try:
                    rgb = tiles.read(r, int(c))
                except Exception as exc:
                    raise InputDataError(
                        f"slide {slide_id} ({path})" if slide_id else str(path),
                        f"cannot decode tile ({r}, {c}) of level {level}: {exc}",
                    ) from exc
                out_ratio.append(float(brown_mask(rgb, **opts.thresholds).mean()))
                out_x.append(int(round(c * size * ds)))
                out_y.append(int(round(r * size * ds)))
        if tiles is not None:
            tiles.close()
        for r in range(r0, min(r1, keep.shape[0])) if tiles is None else ():
            for c0, n in _runs(keep[r], opts.max_region_patches):
                x, y = int(round(c0 * size * ds)), int(round(r * size * ds))
                try:
                    region = slide.read_region((x, y), level, (n * size, size))
                except Exception as exc:  # OpenSlide raises its own errors on truncated/corrupt tiles
                    raise InputDataError(
                        f"slide {slide_id} ({path})" if slide_id else str(path),
                        f"cannot read the region at ({x}, {y}) level {level}: {exc}",
                    ) from exc
                rgb = np.asarray(region)[..., :3]
                ratios = patch_brown_ratios(rgb, size, **opts.thresholds)
                out_ratio.extend(ratios.tolist())
                out_x.extend(int(round((c0 + k) * size * ds)) for k in range(n))
                out_y.extend([y] * n)
        patches = pd.DataFrame(
            {
                "x": np.array(out_x, dtype=np.int64),
                "y": np.array(out_y, dtype=np.int64),
                "level": level,
                "size": size,
                "brown_ratio": np.array(out_ratio, dtype=np.float32),
            }
        )
        patches["size_level0"] = int(round(size * ds))
        patches["tumour"] = patches["brown_ratio"] > opts.threshold
        summary = {
            "reader": "tifffile" if tiles is not None else "openslide",
            "level": int(level),
            "mpp": float(mpp) if mpp is not None else None,
            "width": int(slide.level_dimensions[level][0]),
            "height": int(slide.level_dimensions[level][1]),
            **counts,
            "scored_patches": int(len(patches)),
            "tumour_patches": int(patches["tumour"].sum()),
            "seconds": round(time.perf_counter() - start, 3),
        }
        return patches, summary
    finally:
        slide.close()


def _score_one(job: tuple) -> tuple[str, pd.DataFrame | None, dict]:
    slide_id, path, opts, on_error = job
    try:
        patches, summary = score_slide(path, opts, slide_id)
        return slide_id, patches, {"status": "ok", "error": "", **summary}
    except InputDataError as exc:
        if on_error != "skip":
            raise
        return slide_id, None, {"status": "failed", "error": str(exc)}


def score_slides(
    slides: pd.DataFrame, options: TilingOptions | dict, n_workers: int = 1, on_error: str = "raise"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score many slides (``slide_id``, ``path`` columns), in parallel processes when ``n_workers`` > 1.

    ``on_error``: ``raise`` stops at the first bad slide (an :class:`InputDataError` naming it);
    ``skip`` records the failure in the summary and carries on. A slide with no tumour patch is reported
    (``status: no_tumour``), not fatal.

    Returns ``(patches, summary)``: all scored patches with their ``slide_id``; one summary row per slide.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_slide_error must be raise or skip, not {on_error!r}")
    opts = options if isinstance(options, TilingOptions) else TilingOptions.from_dict(options)
    jobs = [(row.slide_id, str(row.path), opts, on_error) for row in slides.itertuples(index=False)]
    results: dict[str, tuple] = {}
    bar = tqdm(total=len(jobs), desc="Tiling slides", unit="slide", leave=False, disable=None)
    try:
        if n_workers > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(max_workers=n_workers) as pool:
                futures = [pool.submit(_score_one, job) for job in jobs]
                for future in as_completed(futures):
                    slide_id, patches, summary = future.result()
                    results[slide_id] = (patches, summary)
                    bar.update()
        else:
            for job in jobs:
                slide_id, patches, summary = _score_one(job)
                results[slide_id] = (patches, summary)
                bar.update()
    finally:
        bar.close()
    frames, rows = [], []
    for slide_id, _path, _opts, _on in jobs:
        patches, summary = results[slide_id]
        if patches is not None:
            frames.append(patches.assign(slide_id=slide_id))
            if summary.get("tumour_patches", 0) == 0:
                summary["status"] = "no_tumour"
                logger.warning("slide %s: no tumour patch (brown ratio > %.2f)", slide_id, opts.threshold)
        rows.append({"slide_id": slide_id, **summary})
    patches = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["x", "y", "level", "size", "brown_ratio", "size_level0", "tumour", "slide_id"])
    )
    summary = pd.DataFrame(rows)
    for column in ("grid_patches", "candidate_patches", "scored_patches", "tumour_patches"):
        if column in summary:
            summary[column] = summary[column].fillna(0).astype(int)
    return patches, summary
