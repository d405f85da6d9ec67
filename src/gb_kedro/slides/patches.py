"""Decoded tumour patches as arrays, and the views a model is fed.

* :func:`decode_patches`: every patch of a patch index decoded once per run (the catalog entry ``patch_pixels``),
  slide by slide on the configured executor, each slide first into a per-slide HDF5 store (a killed run resumes
  from the slides done; the stores are removed once the array is assembled);
* :func:`training_view`: one patch as a float tensor, cut to a (random or centre) window and augmented;
* :func:`windows` / :func:`window_batches`: the non-overlapping model-sized windows of patches, batch by
  batch, optionally each in its 4 rotations by 90 degrees (:func:`rotations`) or its 8 flips / rotations
  (:func:`dihedral`); inference averages a patch's views.
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
from gb_kedro.slides.augment import Augment, StainMix, hed_jitter_batch, stain_transfer_batch
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


# The random numbers of one training view, as a row of floats: window corner (y, x), stain mixing (on, the item's
# slide, the slide whose statistics it takes), flip, quarter turns, HED jitter (on, scale (3), shift (3)).
VIEW_FIELDS = 14


def draw_view(
    image: np.ndarray, crop: int | None, augment: Augment | None, stain: StainMix | None, slide: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One item's random view, drawn from torch's generator in the order the pixels use it: the uint8 window
    [3, crop, crop] (random with ``augment``, the centre one without) and its draws ([VIEW_FIELDS] floats);
    :func:`apply_views` does the pixel work for a whole batch."""
    size = image.shape[-1]
    draws = torch.zeros(VIEW_FIELDS)
    if crop and crop < size:
        span = size - crop
        y0, x0 = (
            (int(torch.randint(span + 1, (1,))), int(torch.randint(span + 1, (1,))))
            if augment is not None
            else (span // 2, span // 2)
        )
        image = image[:, y0 : y0 + crop, x0 : x0 + crop]
        draws[0], draws[1] = y0, x0
    if stain is not None and stain.p > 0 and float(torch.rand(1)) < stain.p:
        draws[2:5] = torch.tensor([1.0, slide, int(torch.randint(len(stain.statistics), (1,)))])
    if augment is not None and augment.flips:
        draws[5] = float(torch.rand(1).item() < 0.5)
        draws[6] = int(torch.randint(4, (1,)))
    if augment is not None and (augment.hed_sigma or augment.hed_bias):
        draws[7] = 1.0
        draws[8:11] = (1.0 + (torch.rand(1, 1, 1, 3) * 2 - 1) * augment.hed_sigma).reshape(3)
        draws[11:14] = ((torch.rand(1, 1, 1, 3) * 2 - 1) * augment.hed_bias).reshape(3)
    return torch.from_numpy(np.array(image)), draws  # a copy: rows of a memory map are read-only


def apply_views(windows: torch.Tensor, draws: torch.Tensor, stain: StainMix | None) -> torch.Tensor:
    """The pixel work of a batch of views (uint8 windows [N, 3, S, S] and their :func:`draw_view` draws
    [N, VIEW_FIELDS]), the batch at once: float [0, 1], another slide's stain where drawn, flip and quarter turns,
    HED jitter. Item by item the same pixels as :func:`training_view` gives with the same draws."""
    x = windows.float().div_(255.0)
    mixed = draws[:, 2] > 0
    if stain is not None and mixed.any():
        statistics = torch.as_tensor(stain.statistics)
        pairs = draws[mixed][:, 3:5].long()
        x[mixed] = stain_transfer_batch(x[mixed], statistics[pairs[:, 0]], statistics[pairs[:, 1]])
    if (draws[:, 5] > 0).any() or (draws[:, 6] > 0).any():
        x = torch.stack(
            [
                torch.rot90(v.flip(-1) if f > 0 else v, int(k), dims=(-2, -1))
                for v, f, k in zip(x, draws[:, 5], draws[:, 6])
            ]
        )
    jitter = draws[:, 7] > 0
    if jitter.any():
        x[jitter] = hed_jitter_batch(x[jitter], draws[jitter][:, 8:11], draws[jitter][:, 11:14])
    return x


def training_view(
    image: np.ndarray, crop: int | None = None, augment: Augment | None = None, stain=None, slide: int = 0
) -> torch.Tensor:
    """A uint8 patch [3, S, S] as float [0, 1], cut to a ``crop`` x ``crop`` window (random with ``augment``,
    the centre one without), given another slide's stain by ``stain`` (a :class:`StainMix`; ``slide``: the
    patch's own) and augmented: :func:`draw_view` then :func:`apply_views` on a batch of one."""
    window, draws = draw_view(image, crop, augment, stain, slide)
    return apply_views(window[None], draws[None], stain)[0]


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


def rotations(images: torch.Tensor) -> list[torch.Tensor]:
    """Square [N, 3, S, S] images turned by 0, 90, 180 and 270 degrees."""
    return [torch.rot90(images, k, dims=(-2, -1)) for k in range(4)]


def dihedral(images: torch.Tensor) -> list[torch.Tensor]:
    """The 8 flips / 90-degree rotations of square [N, 3, S, S] images: the 4 :func:`rotations` of the images,
    then those of their mirror images."""
    return [*rotations(images), *rotations(images.flip(-1))]


VIEWS = {"none": lambda part: [part], "rotations": rotations, "dihedral": dihedral}  # patches.test_views


def window_batches(
    images: np.ndarray, crop: int | None, batch_size: int, views: str, device="cpu"
) -> Iterator[list[torch.Tensor]]:
    """uint8 patches [N, 3, S, S] in batches: per batch, the list of its views as float [0, 1] tensors on
    ``device``: its windows (``views: none``), each window in its 4 rotations by 90 degrees (``rotations``) or in
    its 8 flips / rotations (``dihedral``), window by window."""
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(np.array(images[i : i + batch_size])).float().div_(255.0).to(device)  # a writable copy
        yield [view for part in windows(x, crop) for view in VIEWS[views](part)]
