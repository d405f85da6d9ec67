"""Patch encoders of the user's own beside the paper's ViT: features a foundation model (UNI, CONCH, Virchow, ...)
wrote through TRIDENT or CLAM, or a model exported with ``torch.export``, as per-patch embeddings of this project's
tumour patches (``<name>.patch_embeddings``: the layout of ``wsi_embeddings``) for every consumer that reads one
vector per patch -- the image-only 1-NN and lineage classifier against the strong baseline, the image axis probe.

``features``: the folder is found and each slide's file matched to the tumour patches by level-0 coordinates and
patch side (:mod:`gb_kedro.slides.features`: another magnification, patch size or grid stops with one line); the
patches of ours without a feature row are counted (``<name>.patch_feature_match``) and left out of the figures
(NaN rows), and fewer than ``min_matched`` stop the run. ``exported``: the ``.pt2`` file is loaded (no model code,
no download), the decoded patches resized to ``input_px`` and normalised, embedded in batches on the configured
device, and written per slide in TRIDENT's layout under ``cache_dir`` -- read back by the same matcher, and reused
by a rerun with the same model file, settings and patches.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from gb_kedro.config import PatchEncoderSettings
from gb_kedro.datasets.patch_pixels import PatchPixels
from gb_kedro.datasets.patch_store import PatchStore, read_features, slide_file_key, write_features
from gb_kedro.errors import InputDataError
from gb_kedro.models.device import resolve_device
from gb_kedro.provenance import fingerprint, require_rows
from gb_kedro.slides.features import (
    find_feature_files,
    level0_side,
    match_patches,
    require_on_grid,
    require_same_field,
)
from gb_kedro.slides.morphometry import feature_frame, numbered_columns

logger = logging.getLogger(__name__)


def _side(index: pd.DataFrame, rows: np.ndarray) -> int:
    column = "size_level0" if "size_level0" in index else "size"
    return int(index[column].to_numpy()[rows[0]])


def read_patch_features(
    patch_index: pd.DataFrame, store: PatchStore, settings: PatchEncoderSettings, name: str, folder: str | None = None
) -> tuple[pd.DataFrame, dict]:
    """Every tumour patch's feature row from a TRIDENT / CLAM folder (``folder``, else ``settings.features.path``):
    ``(embeddings`` -- the index columns and ``e0..`` in patch-index order, NaN where a patch has no row -- ``,
    match report)``. Stops with one line on another field of view, another grid, a feature width that changes
    between slides, or fewer matched patches than ``min_matched``."""
    cfg = settings.features
    layout, root, files = find_feature_files(folder or cfg.path, cfg.layout)
    index = patch_index.reset_index(drop=True)
    corners = index[["x", "y"]].to_numpy(np.int64)
    values: np.ndarray | None = None
    per_slide = []
    for slide, rows in index.groupby("slide_id", sort=False).indices.items():
        file = files.get(slide)
        if file is None:
            per_slide.append({"slide_id": slide, "patches": len(rows), "matched": 0, "file": None})
            continue
        coords, features, attrs = read_features(file)
        ours = corners[rows]
        side = level0_side(attrs, file, cfg.patch_size_level0)
        mpp = store.coord_attrs(slide).get("mpp")
        require_same_field(file, slide, side, _side(index, rows), mpp, attrs, cfg.coord_tolerance)
        found = match_patches(ours, coords, side, cfg.coord_tolerance)
        require_on_grid(file, slide, ours, coords, found)
        if values is None:
            values = np.full((len(index), features.shape[1]), np.nan, np.float32)
        elif features.shape[1] != values.shape[1]:
            raise InputDataError(file, f"features of width {features.shape[1]}, other slides' {values.shape[1]}")
        hit = found >= 0
        values[rows[hit]] = features[found[hit]]
        per_slide.append({"slide_id": slide, "patches": len(rows), "matched": int(hit.sum()), "file": file.name})
    if values is None:
        raise InputDataError(root, f"none of the patch index's {index['slide_id'].nunique()} slides has a file here")
    matched = int(sum(s["matched"] for s in per_slide))
    report = {
        "encoder": name,
        "source": settings.source,
        "layout": layout,
        "folder": str(root),
        "dim": int(values.shape[1]),
        "patches": len(index),
        "matched": matched,
        "missing": len(index) - matched,
        "slides_without_file": [s["slide_id"] for s in per_slide if s["file"] is None],
        "files_not_in_index": sorted(set(files) - set(index["slide_id"])),
        "per_slide": per_slide,
    }
    if matched < cfg.min_matched * len(index):
        raise InputDataError(
            root,
            f"{matched} of the {len(index)} tumour patches have a feature row, fewer than min_matched "
            f"{cfg.min_matched:g} (slides without a file: {len(report['slides_without_file'])}): extract features "
            "for the project's tumour patches (data_engineering's patch stores hold their coordinates)",
        )
    if report["missing"]:
        logger.warning(
            "patch_features %s: %d of %d tumour patches have no feature row (%d slide(s) without a file); "
            "left out of its figures",
            name,
            report["missing"],
            len(index),
            len(report["slides_without_file"]),
        )
    return feature_frame(index, values, [f"e{i}" for i in range(values.shape[1])]), report


def load_exported(path: str | Path, device: torch.device) -> torch.nn.Module:
    """A patch encoder saved with ``torch.export.save``, as a module on ``device`` (one line when unreadable)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputDataError(path, "exported model not found (patch_features.encoders.<name>.exported.path)")
    try:
        program = torch.export.load(str(path))
    except Exception as exc:  # noqa: BLE001 -- any unreadable file is the user's input, named in one line
        raise InputDataError(path, f"not a torch.export program ({type(exc).__name__}: {exc})") from exc
    if device.type != "cpu":
        from torch.export.passes import move_to_device_pass

        program = move_to_device_pass(program, device)
    return program.module()


@torch.no_grad()
def embed_with(model: torch.nn.Module, images: np.ndarray, settings: PatchEncoderSettings, device) -> np.ndarray:
    """uint8 patches [N, 3, S, S] -> the model's features [N, D] (float32): resized to ``input_px`` (antialiased
    bilinear), scaled to [0, 1] and normalised with the model's mean and std, ``batch_size`` at a time."""
    cfg = settings.exported
    mean = torch.tensor(cfg.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    std = torch.tensor(cfg.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    out = []
    for start in range(0, len(images), cfg.batch_size):
        x = torch.from_numpy(np.asarray(images[start : start + cfg.batch_size])).to(device).float().div_(255.0)
        if x.shape[-1] != cfg.input_px:
            x = F.interpolate(x, size=(cfg.input_px, cfg.input_px), mode="bilinear", antialias=True)
        z = model((x - mean) / std)
        z = z[0] if isinstance(z, tuple | list) else z
        if not isinstance(z, torch.Tensor) or z.ndim != 2:
            raise InputDataError(
                cfg.path, f"the model returns {getattr(z, 'shape', type(z))} per batch, not [N, D] features"
            )
        out.append(z.float().cpu().numpy())
    return np.concatenate(out)


def cache_exported(
    patch_index: pd.DataFrame, pixels: PatchPixels, store: PatchStore, settings: PatchEncoderSettings, name: str
) -> Path:
    """The exported model's features of every tumour patch, written per slide in TRIDENT's layout under
    ``cache_dir/features_<name>/`` (a slide whose file was made with the same model file, settings and patches is
    not redone); returns that folder."""
    from tqdm.auto import tqdm

    cfg = settings.exported
    folder = Path(settings.cache_dir) / f"features_{name}"
    index = patch_index.reset_index(drop=True)
    device = resolve_device(settings.device)
    model_path = Path(cfg.path).expanduser()
    model_key = slide_file_key(model_path) if model_path.is_file() else None
    model = None
    corners = index[["x", "y"]].to_numpy(np.int64)
    slides = index.groupby("slide_id", sort=False).indices
    for slide, rows in tqdm(slides.items(), desc=f"{name} features", unit="slide", leave=False, disable=None):
        coords = corners[rows]
        key = fingerprint(model_key, cfg.to_dict(), pixels.px, coords.tolist())
        target = folder / f"{slide}.h5"
        if _cached_key(target) == key:
            continue
        model = model or load_exported(cfg.path, device)
        features = embed_with(model, pixels.rows(rows), settings, device)
        side = _side(index, rows)
        attrs = store.coord_attrs(slide)
        write_features(
            target,
            coords,
            features,
            {"patch_size_level0": side, "patch_size": pixels.px, "mpp": attrs.get("mpp")},
            {"params_key": key, "encoder": name, "model": str(cfg.path)},
        )
    logger.info("patch_features %s: %d slide(s) embedded with %s (%s)", name, len(slides), cfg.path, device)
    return folder


def _cached_key(path: Path) -> str | None:
    import h5py

    if not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as h5:
            return str(h5.attrs.get("params_key"))
    except OSError:
        return None


def patch_embeddings(
    patch_index: pd.DataFrame,
    pixels: PatchPixels,
    store: PatchStore,
    settings: PatchEncoderSettings,
    name: str,
) -> tuple[pd.DataFrame, dict]:
    """Encoder ``name``'s embeddings of every tumour patch and the match report, from its feature folder
    (``features``) or its exported model through the per-slide cache (``exported``)."""
    if settings.source == "exported":
        return read_patch_features(
            patch_index, store, settings, name, str(cache_exported(patch_index, pixels, store, settings, name))
        )
    return read_patch_features(patch_index, store, settings, name)


def export_embeddings(
    embeddings: pd.DataFrame, patch_index: pd.DataFrame, store: PatchStore, folder: str | Path, encoder: str
) -> Path:
    """Any per-patch embeddings (``e0..`` columns, patch-index rows) written as a TRIDENT folder
    ``folder/features_<encoder>/<slide>.h5`` (e.g. the WSI encoder's, for another tool, or to check the features
    path against the embeddings it came from); returns that folder."""
    index = patch_index.reset_index(drop=True)
    require_rows(embeddings, index, "embeddings", "export_embeddings")
    target = Path(folder) / f"features_{encoder}"
    values = embeddings[numbered_columns(embeddings, "e")].to_numpy(np.float32)
    corners = index[["x", "y"]].to_numpy(np.int64)
    for slide, rows in index.groupby("slide_id", sort=False).indices.items():
        attrs = store.coord_attrs(slide)
        write_features(
            target / f"{slide}.h5",
            corners[rows],
            values[rows],
            {"patch_size_level0": _side(index, rows), "patch_size": attrs.get("patch_size"), "mpp": attrs.get("mpp")},
            {"encoder": encoder},
        )
    return target


def export_trident_coords(patch_index: pd.DataFrame, store: PatchStore, folder: str | Path) -> Path:
    """This project's tumour patches as TRIDENT coordinate files, ``folder/patches/<slide>_patches.h5`` (``coords``
    [N, 2] level-0 px with the attributes TRIDENT's patching writes: ``patch_size`` at the target magnification,
    ``patch_size_level0``, ``level0_magnification``, ``target_magnification`` -- 10x per micron per pixel --,
    ``overlap``, ``name``), so that ``run_batch_of_slides.py --task feat --coords_dir`` embeds exactly these
    patches. Returns ``folder``."""
    import h5py

    from gb_kedro.datasets.atomic import atomic_path

    index = patch_index.reset_index(drop=True)
    folder = Path(folder)
    corners = index[["x", "y"]].to_numpy(np.int64)
    for slide, rows in index.groupby("slide_id", sort=False).indices.items():
        attrs = store.coord_attrs(slide)
        mpp, target_mpp = attrs.get("mpp"), attrs.get("target_mpp")
        if not mpp or not target_mpp:
            raise InputDataError(
                store.path(slide), "no mpp / target_mpp on its coords: rerun data_engineering's tiling"
            )
        side = _side(index, rows)
        coord_attrs = {
            "patch_size": int(round(side * mpp / target_mpp)),
            "patch_size_level0": side,
            "level0_magnification": int(round(10.0 / mpp)),
            "target_magnification": int(round(10.0 / target_mpp)),
            "overlap": 0,
            "name": slide,
            "savetodir": str(folder),
        }
        with atomic_path(folder / "patches" / f"{slide}_patches.h5") as tmp, h5py.File(tmp, "w") as h5:
            h5.create_dataset("coords", data=corners[rows])
            h5["coords"].attrs.update(coord_attrs)
    return folder
