"""Decoded tumour patches as arrays, and the views a model is fed.

* :func:`decode_patches`: every patch of a patch index decoded once per run (the catalog entry ``patch_pixels``),
  slide by slide on the configured executor, each slide first into a per-slide HDF5 store (a killed run resumes
  from the slides done; the stores are removed once the array is assembled);
* :func:`training_view`: one patch as a float tensor, cut to a (random or centre) window and augmented;
* :func:`windows` / :func:`window_batches`: the non-overlapping model-sized windows of patches, batch by
  batch, optionally each in its 8 flips / 90-degree rotations (:func:`dihedral`; inference averages a
  patch's views).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from gb_kedro.config import PatchesConfig
from gb_kedro.datasets.patch_pixels import PatchPixels, pixels_key
from gb_kedro.datasets.patch_store import read_images, slide_file_key, write_images
from gb_kedro.provenance import fingerprint
from gb_kedro.slides.augment import Augment
from gb_kedro.slides.dataset import PatchDataset
from gb_kedro.slides.fanout import map_slides
from gb_kedro.slides.manifest import slide_paths


def read_patches(
    index: pd.DataFrame,
    paths: dict,
    output_size: int,
    batch_size: int,
    num_workers: int,
    store: str | Path | None = None,
    executor: str = "local",
) -> np.ndarray:
    """Decode the patches of ``index``: uint8 ``[N, 3, S, S]`` in index order.

    Slide by slide (:func:`decode_slide`, one unit of work per slide on ``executor``: ``local`` processes when
    ``num_workers`` > 1, or ``dask``). With a ``store`` folder each slide's patches are written there first
    (``<store>/<slide_id>.h5``; a killed run resumes from the slides done) and the folder is removed once the
    array is assembled; without one the pixels come back from the workers.
    """
    index = index.reset_index(drop=True)
    store = Path(store) if store is not None else None
    columns = [c for c in ("x", "y", "level", "size", "read_size") if c in index]
    jobs, positions = [], {}
    for slide_id, rows in index.groupby("slide_id", sort=False):
        jobs.append((slide_id, str(paths[slide_id]), rows[columns], output_size, batch_size, store))
        positions[slide_id] = rows.index.to_numpy()
    out = np.empty((len(index), 3, output_size, output_size), np.uint8)
    for slide_id, images in map_slides(decode_slide, jobs, executor, max(1, num_workers), desc="Decoding patches"):
        out[positions[slide_id]] = images if store is None else read_images(store / f"{slide_id}.h5")
    if store is not None:
        shutil.rmtree(store, ignore_errors=True)
    return out


def decode_slide(job: tuple) -> tuple[str, np.ndarray | None]:
    """The per-slide decoding unit (any worker): the slide's patches as uint8 [n, 3, S, S], written to its store
    (and None returned: the pixels stay off the wire), or returned when there is no store."""
    slide_id, path, rows, output_size, batch_size, store = job
    key = fingerprint(rows.to_numpy().astype(str).tolist(), output_size, slide_file_key(path))
    target = Path(store) / f"{slide_id}.h5" if store is not None else None
    if target is not None and read_images(target, key) is not None:
        return slide_id, None
    data = PatchDataset(
        rows.assign(slide_id=slide_id).reset_index(drop=True), {slide_id: path}, output_size=output_size
    )
    images = np.empty((len(rows), 3, output_size, output_size), np.uint8)
    i = 0
    for batch, _ in DataLoader(data, batch_size=batch_size, num_workers=0):
        images[i : i + len(batch)] = (batch * 255.0).round().clamp(0, 255).to(torch.uint8).numpy()
        i += len(batch)
    data.close()
    if target is None:
        return slide_id, images
    write_images(target, images, rows[["x", "y"]].to_numpy(), key)
    return slide_id, None


def decode_patches(
    index: pd.DataFrame, manifest: pd.DataFrame, cfg: PatchesConfig, store_root: str | Path
) -> PatchPixels:
    """Every patch of ``index`` decoded at the size of ``cfg`` (:attr:`PatchesConfig.geometry`), per-slide
    stores under ``<store_root>/pixels_<px>`` while it runs."""
    index = index.reset_index(drop=True)
    px, _ = cfg.geometry
    images = read_patches(
        index,
        slide_paths(manifest),
        px,
        cfg.decode.batch_size,
        cfg.decode.num_workers,
        Path(store_root) / f"pixels_{px}",
        cfg.decode.executor,
    )
    return PatchPixels(images, pixels_key(index, px))


def training_view(
    image: np.ndarray, crop: int | None = None, augment: Augment | None = None, stain=None
) -> torch.Tensor:
    """A uint8 patch [3, S, S] as float [0, 1] (a copy: rows of a disk cache are read-only), cut to a
    ``crop`` x ``crop`` window (random with ``augment``, the centre one without), given another slide's
    stain by ``stain`` (a callable on the window) and augmented."""
    x = torch.from_numpy(np.array(image)).float().div_(255.0)
    if crop and crop < x.shape[-1]:
        span = x.shape[-1] - crop
        y0, x0 = (
            (int(torch.randint(span + 1, (1,))), int(torch.randint(span + 1, (1,))))
            if augment is not None
            else (span // 2, span // 2)
        )
        x = x[:, y0 : y0 + crop, x0 : x0 + crop]
    if stain is not None:
        x = stain(x)
    return augment(x) if augment is not None else x


def windows(images: torch.Tensor, crop: int | None) -> list[torch.Tensor]:
    """The non-overlapping ``crop``-px windows of [N, 3, S, S] images (the images themselves without crop)."""
    size = images.shape[-1]
    if not crop or crop >= size:
        return [images]
    return [
        images[:, :, a : a + crop, b : b + crop]
        for a in range(0, size - crop + 1, crop)
        for b in range(0, size - crop + 1, crop)
    ]


def dihedral(images: torch.Tensor) -> list[torch.Tensor]:
    """The 8 flips / 90-degree rotations of square [N, 3, S, S] images, the images themselves first."""
    return [torch.rot90(view, k, dims=(-2, -1)) for view in (images, images.flip(-1)) for k in range(4)]


def window_batches(
    images: np.ndarray, crop: int | None, batch_size: int, views: str, device="cpu"
) -> Iterator[list[torch.Tensor]]:
    """uint8 patches [N, 3, S, S] in batches: per batch, the list of its views as float [0, 1] tensors on
    ``device``: its windows (``views: none``), or each window in its 8 flips / rotations (``dihedral``)."""
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(np.array(images[i : i + batch_size])).float().div_(255.0).to(device)  # a writable copy
        parts = windows(x, crop)
        yield [view for part in parts for view in dihedral(part)] if views == "dihedral" else parts
