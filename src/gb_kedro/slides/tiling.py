"""Streaming tumour-patch selection on whole-slide images (OpenSlide; OME-TIFF through tifffile).

For one slide: choose the pyramid level at ``target_mpp`` (within ``mpp_tolerance``), or, when no level is,
the nearest finer level and resample every patch to the target field of view (a ``size``-px patch covers
``size * target_mpp`` microns whatever the scanner); lay a grid of non-overlapping patches on it; pre-filter with a low-resolution thumbnail (skip glass, optionally
skip patches with almost no brown); read the remaining patches row by row in wide regions (runs of
adjacent candidates, capped at ``max_region_patches``), score every pixel with the exact integer HSL rule
of :mod:`gb_kedro.slides.color`, and keep patches whose brown ratio exceeds ``threshold``.
Memory is one region (``size`` x ``max_region_patches * size`` RGBA) plus the thumbnail, whatever the
slide size. Each slide is one unit of work (:func:`process_slide`) on a local process pool or a Dask cluster
(:mod:`gb_kedro.slides.fanout`), writing one HDF5 store per slide (:mod:`gb_kedro.datasets.patch_store`).
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gb_kedro.config import TilingOptions
from gb_kedro.datasets.patch_store import PatchStore, slide_file_key
from gb_kedro.datasets.slides import OmeTiffSlide, open_slide, read_tile
from gb_kedro.errors import InputDataError
from gb_kedro.provenance import fingerprint
from gb_kedro.slides.color import brown_mask, patch_brown_ratios, tissue_mask
from gb_kedro.slides.fanout import map_slides

logger = logging.getLogger(__name__)


def slide_mpp(slide, fallback_mpp: float | None = None) -> tuple[float | None, str]:
    """Microns per pixel at level 0 and where it came from: ``metadata`` (``openslide.mpp-x``), else
    ``objective_power`` (10 um / power: 20x -> 0.5), else ``parameter`` (``fallback_mpp``), else ``none``."""
    props = slide.properties
    for key in ("openslide.mpp-x", "openslide.mpp-y"):
        try:
            value = float(props.get(key, "nan"))
        except ValueError:
            continue
        if value > 0:
            return value, "metadata"
    try:
        power = float(props.get("openslide.objective-power", "nan"))
    except ValueError:
        power = float("nan")
    if power > 0:
        return 10.0 / power, "objective_power"
    if fallback_mpp:
        return float(fallback_mpp), "parameter"
    return None, "none"


@dataclass(frozen=True)
class LevelChoice:
    """Where a slide's patches are read: ``level``, its ``mpp``, where the mpp came from, and ``read_size``
    (px read at that level per patch; ``size`` unless the patch is resampled to the target field of view)."""

    level: int
    mpp: float | None
    mpp_source: str
    read_size: int


def choose_level(
    slide, target_mpp: float | None, tolerance: float, size: int, fallback_mpp: float | None = None
) -> LevelChoice:
    """The level to tile and the read size.

    A level whose mpp lies within ``tolerance`` (relative) of ``target_mpp`` is read as is (the coarsest such
    level). Otherwise the nearest finer level is read with ``read_size = size * target_mpp / level_mpp`` px per
    patch, resampled to ``size``; a slide coarser than the target at level 0 is upsampled from level 0 (warned).
    ``target_mpp`` None: level 0, no resampling. No resolution known (no metadata, objective power or
    ``fallback_mpp``): an :class:`InputDataError`-worthy ``ValueError`` (the caller names the slide).
    """
    mpp0, source = slide_mpp(slide, fallback_mpp)
    if target_mpp is None:
        return LevelChoice(0, mpp0, source, size)
    if mpp0 is None:
        raise ValueError(
            "no microns-per-pixel, objective power or fallback: set data_engineering.tiling.fallback_mpp "
            "(the scanner's um/px at level 0) or target_mpp: null to tile level 0 as is"
        )
    mpps = [mpp0 * ds for ds in slide.level_downsamples]
    finer = [lv for lv, m in enumerate(mpps) if m <= target_mpp * (1 + tolerance)]
    if not finer:
        warnings.warn(
            f"level 0 ({mpp0:.3f} um/px) is coarser than target_mpp {target_mpp}: patches upsampled from level 0",
            stacklevel=2,
        )
        return LevelChoice(0, mpp0, source, max(1, int(round(size * target_mpp / mpp0))))
    level = max(finer, key=lambda lv: mpps[lv])
    if abs(mpps[level] / target_mpp - 1) <= tolerance:
        return LevelChoice(level, mpps[level], source, size)
    return LevelChoice(level, mpps[level], source, int(round(size * target_mpp / mpps[level])))


def _thumbnail(slide, level: int, opts: TilingOptions, read_size: int) -> tuple[np.ndarray, float]:
    """RGB thumbnail with ``thumbnail_px_per_patch`` px per patch side, and its scale (level-0 px per thumb px)."""
    ds = slide.level_downsamples[level]
    scale = read_size * ds / opts.thumbnail_px_per_patch
    w0, h0 = slide.dimensions
    thumb = slide.get_thumbnail((max(1, int(round(w0 / scale))), max(1, int(round(h0 / scale)))))
    return np.asarray(thumb.convert("RGB")), w0 / thumb.size[0]


def candidate_grid(slide, level: int, opts: TilingOptions, read_size: int | None = None) -> tuple[np.ndarray, dict]:
    """Boolean [rows, cols] of the patches to read (each ``read_size`` px at ``level``; default ``size``), and counts. ``tissue``: any tissue pixel in the
    patch's thumbnail footprint (dilated by one thumbnail pixel); ``brown``: also a thumbnail brown ratio
    of at least ``prefilter_brown_min``; ``none``: every patch."""
    read_size = read_size or opts.size
    w, h = slide.level_dimensions[level]
    rows, cols = h // read_size, w // read_size
    all_patches = np.ones((rows, cols), bool)
    if opts.prefilter == "none" or rows == 0 or cols == 0:
        return all_patches, {"grid_patches": int(rows * cols), "candidate_patches": int(rows * cols)}
    if opts.prefilter not in ("tissue", "brown"):
        raise ValueError(f"unknown prefilter {opts.prefilter!r}: use none, tissue or brown")
    thumb, scale = _thumbnail(slide, level, opts, read_size)
    ds = slide.level_downsamples[level]
    step = read_size * ds / scale  # thumbnail px per patch
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
        return read_tile(self._tif.filehandle, self._page, row * self._across + col)

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
    name = f"slide {slide_id} ({path})" if slide_id else str(path)
    slide = open_slide(path, slide_id)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                choice_ = choose_level(slide, opts.target_mpp, opts.mpp_tolerance, opts.size, opts.fallback_mpp)
            except ValueError as exc:
                raise InputDataError(name, str(exc)) from exc
        for w in caught:
            logger.warning("%s: %s", slide_id or path, w.message)
        level, read = choice_.level, choice_.read_size
        if read != opts.size:
            logger.info(
                "%s: no level at %s um/px; reading %d px at level %d (%.3f um/px) per %d-px patch",
                slide_id or path,
                opts.target_mpp,
                read,
                level,
                choice_.mpp,
                opts.size,
            )
        keep, counts = candidate_grid(slide, level, opts, read)
        ratios, xy, reader = _score_grid(slide, path, name, level, keep, read, opts, rows)
        ds = slide.level_downsamples[level]
        patches = pd.DataFrame(
            {
                "x": np.array([int(round(c * read * ds)) for _, c in xy], dtype=np.int64),
                "y": np.array([int(round(r * read * ds)) for r, _ in xy], dtype=np.int64),
                "level": level,
                "size": opts.size,
                "brown_ratio": np.array(ratios, dtype=np.float32),
            }
        )
        patches["size_level0"] = int(round(read * ds))
        patches["read_size"] = read
        fixed = opts.fixed_threshold  # auto: decided over the cohort once every slide is scored
        patches["tumour"] = patches["brown_ratio"] > fixed if fixed is not None else False
        summary = {
            "reader": reader,
            "level": int(level),
            "mpp": float(choice_.mpp) if choice_.mpp is not None else None,
            "mpp_source": choice_.mpp_source,
            "read_size": int(read),
            "width": int(slide.level_dimensions[level][0]),
            "height": int(slide.level_dimensions[level][1]),
            **counts,
            "scored_patches": int(len(patches)),
            "tumour_patches": int(patches["tumour"].sum()),
            **brown_quantiles(patches["brown_ratio"].to_numpy()),
            "seconds": round(time.perf_counter() - start, 3),
        }
        return patches, summary
    finally:
        slide.close()


def _score_grid(slide, path, name: str, level: int, keep: np.ndarray, read: int, opts: TilingOptions, rows):
    """Brown ratios of the ``keep`` patches (each ``read`` px at ``level``, resampled to ``size`` when they
    differ), their (row, col), and the reader used: raw TIFF tiles when the level's tiles are the patches,
    else wide regions of OpenSlide (or the OME-TIFF reader)."""
    from PIL import Image

    size = opts.size
    r0, r1 = rows if rows is not None else (0, keep.shape[0])
    ratios: list[float] = []
    xy: list[tuple[int, int]] = []
    tiles = None
    if opts.reader != "openslide" and read == size:
        tiles = TileReader.for_level(path, *slide.level_dimensions[level], size)
    if tiles is None and opts.reader == "tifffile":
        raise ValueError(
            f"{path}: level {level} is not stored as {size}x{size} RGB tiles read as they are; use reader: openslide or auto"
        )
    if tiles is not None:
        try:
            for r in range(r0, min(r1, keep.shape[0])):
                for c in np.flatnonzero(keep[r]):
                    try:
                        rgb = tiles.read(r, int(c))
                    except Exception as exc:
                        raise InputDataError(name, f"cannot decode tile ({r}, {c}) of level {level}: {exc}") from exc
                    ratios.append(float(brown_mask(rgb, **opts.thresholds).mean()))
                    xy.append((r, int(c)))
        finally:
            tiles.close()
        return ratios, xy, "tifffile"
    ds = slide.level_downsamples[level]
    for r in range(r0, min(r1, keep.shape[0])):
        for c0, n in _runs(keep[r], opts.max_region_patches):
            x, y = int(round(c0 * read * ds)), int(round(r * read * ds))
            try:
                region = slide.read_region((x, y), level, (n * read, read))
            except Exception as exc:  # OpenSlide raises its own errors on truncated/corrupt tiles
                raise InputDataError(name, f"cannot read the region at ({x}, {y}) level {level}: {exc}") from exc
            if read != size:  # box filter: patch k of the region maps exactly onto output patch k
                region = region.convert("RGB").resize((n * size, size), Image.Resampling.BOX)
            rgb = np.asarray(region)[..., :3]
            ratios.extend(patch_brown_ratios(rgb, size, **opts.thresholds).tolist())
            xy.extend((r, int(c0 + k)) for k in range(n))
    return ratios, xy, "tifffile (OME-TIFF)" if isinstance(slide, OmeTiffSlide) else "openslide"


BROWN_QUANTILES = (0.5, 0.9, 0.99)
# Thresholds the tiling node reports the effect of (how many tumour patches each would keep)
TRIAL_THRESHOLDS = (0.2, 0.1, 0.05, 0.02, 0.01)


def brown_quantiles(ratios: np.ndarray) -> dict:
    """The brown-ratio distribution of a slide's scored patches (for slide_summary): median, 90th, 99th pct, max."""
    ratios = np.asarray(ratios, float)
    if not len(ratios):
        return {f"brown_p{int(q * 100)}": float("nan") for q in BROWN_QUANTILES} | {"brown_max": float("nan")}
    return {f"brown_p{int(q * 100)}": round(float(np.quantile(ratios, q)), 4) for q in BROWN_QUANTILES} | {
        "brown_max": round(float(ratios.max()), 4)
    }


def otsu_threshold(ratios: np.ndarray) -> float:
    """Otsu's threshold of the brown ratios of the scored (tissue) patches: the split between the patches with
    little brown and those with much (scikit-image); ValueError when they are all alike."""
    from skimage.filters import threshold_otsu

    ratios = np.asarray(ratios, float)
    if len(ratios) < 2 or np.ptp(ratios) == 0:
        raise ValueError("the scored patches all have the same brown ratio: no threshold separates them")
    return float(threshold_otsu(ratios, nbins=1024))


def threshold_effects(ratios: np.ndarray, used: float | None = None) -> str:
    """What each threshold would keep, for the log: ``0.2 -> 0 (used); 0.1 -> 12; ...; Otsu 0.031 -> 1,104``."""
    ratios = np.asarray(ratios, float)
    used = round(used, 4) if used is not None else None
    trials = sorted({*TRIAL_THRESHOLDS, *([used] if used is not None else [])}, reverse=True)
    parts = [f"{t:.3g} -> {int((ratios > t).sum()):,}" + (" (used)" if t == used else "") for t in trials]
    try:
        otsu = otsu_threshold(ratios)
        parts.append(f"Otsu {otsu:.3g} -> {int((ratios > otsu).sum()):,}")
    except ValueError:
        pass
    return "; ".join(parts)


def slide_key(path: str | Path, opts: TilingOptions) -> str:
    """The parameters that make a slide's store: the tiling options and the slide file (name, size, mtime)."""
    return fingerprint(opts.to_dict(), *slide_file_key(path))


def process_slide(job: tuple) -> dict:
    """The per-slide unit of work (runs on any worker): score the slide's patches and write its store, or
    find its store complete for the same parameters and skip it. Returns the slide's summary row only.

    ``job``: ``(slide_id, path, options, on_error, store_root)``.
    """
    slide_id, path, opts, on_error, store_root = job
    store = PatchStore(Path(store_root))
    try:
        key = slide_key(path, opts) if Path(path).exists() else None
        found = store.read_patches(slide_id, key) if key else None
        if found is not None:
            return {"slide_id": slide_id, **found[1], "resumed": True}
        patches, summary = score_slide(path, opts, slide_id)
        row = {"status": "ok", "error": "", **summary}
        coord_attrs = {
            "patch_size": opts.size,
            "patch_level": summary["level"],
            "patch_size_level0": int(patches["size_level0"].iloc[0]) if len(patches) else 0,
            "read_size": summary["read_size"],
            "mpp": summary["mpp"],
            "target_mpp": opts.target_mpp,
        }
        store.write_patches(slide_id, patches, coord_attrs, row, key)
        return {"slide_id": slide_id, **row, "resumed": False}
    except InputDataError as exc:
        if on_error != "skip":
            raise
        return {"slide_id": slide_id, "status": "failed", "error": str(exc), "resumed": False}


def score_slides(
    slides: pd.DataFrame,
    options: TilingOptions | dict,
    store: PatchStore,
    executor: str = "local",
    n_workers: int = 1,
    on_error: str = "raise",
    address: str | None = None,
    threads_per_worker: int = 1,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score many slides (``slide_id``, ``path`` columns), one :func:`process_slide` per slide on ``executor``
    (``local`` processes or ``dask``), each writing its store; slides whose store is complete for the same
    parameters and file are skipped (resume).

    ``on_error``: ``raise`` stops at the first bad slide (an :class:`InputDataError` naming it);
    ``skip`` records the failure in the summary and carries on. A slide with no tumour patch is reported
    (``status: no_tumour``), not fatal.

    Returns ``(patches, summary)``: all scored patches with their ``slide_id`` (read back from the stores, in
    manifest order); one summary row per slide (``resumed`` says which were skipped).
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_slide_error must be raise or skip, not {on_error!r}")
    opts = options if isinstance(options, TilingOptions) else TilingOptions.from_dict(options)
    jobs = [(row.slide_id, str(row.path), opts, on_error, str(store.root)) for row in slides.itertuples(index=False)]
    rows = {
        row["slide_id"]: row
        for row in map_slides(
            process_slide, jobs, executor, n_workers, address, threads_per_worker, desc="Tiling slides"
        )
    }
    frames, ordered = [], []
    for slide_id, *_ in jobs:
        row = rows[slide_id]
        if row["status"] != "failed":
            found = store.read_patches(slide_id)
            if found is None:
                raise InputDataError(store.path(slide_id), "the store a worker just wrote cannot be read back")
            frames.append(found[0].assign(slide_id=slide_id))
        ordered.append(row)
    patches = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(
            columns=["x", "y", "level", "size", "brown_ratio", "size_level0", "read_size", "tumour", "slide_id"]
        )
    )
    threshold = opts.fixed_threshold
    if threshold is None:  # auto: one threshold for the cohort, from every scored patch
        try:
            threshold = otsu_threshold(patches["brown_ratio"].to_numpy())
        except ValueError as exc:
            raise InputDataError(store.root, f"data_engineering.tiling.threshold auto: {exc}") from exc
        patches["tumour"] = patches["brown_ratio"] > threshold
        logger.info(
            "Tiling: automatic brown-ratio threshold (Otsu over %d scored patches): %.4f", len(patches), threshold
        )
    kept = patches.groupby("slide_id")["tumour"].sum()
    for row in ordered:
        row["threshold"] = float(threshold)
        if row["status"] != "failed":
            row["tumour_patches"] = int(kept.get(row["slide_id"], 0))
            if row["tumour_patches"] == 0:
                row["status"] = "no_tumour"
                logger.warning("slide %s: no tumour patch (brown ratio > %.3g)", row["slide_id"], threshold)
    n_resumed = sum(bool(r.get("resumed")) for r in ordered)
    if n_resumed:
        logger.info("Tiling: %d of %d slides found complete in %s and skipped", n_resumed, len(ordered), store.root)
    if len(patches):
        logger.info(
            "Tiling: brown ratio of the %d scored patches: %s; tumour patches kept at each threshold: %s",
            len(patches),
            ", ".join(
                f"{k.removeprefix('brown_')} {v:.3g}" for k, v in brown_quantiles(patches["brown_ratio"]).items()
            ),
            threshold_effects(patches["brown_ratio"].to_numpy(), threshold),
        )
    summary = pd.DataFrame(ordered)
    for column in ("grid_patches", "candidate_patches", "scored_patches", "tumour_patches"):
        if column in summary:
            summary[column] = summary[column].fillna(0).astype(int)
    return patches, summary
