"""Per-slide patch stores: one HDF5 file per slide in the layout CLAM and TRIDENT use.

::

    <root>/patches/<slide_id>.h5        coords [N, 2] int64 (x, y of each patch's top-left corner, level-0 px)
                                        attrs of coords: patch_size, patch_level, patch_size_level0, read_size,
                                        mpp, target_mpp (CLAM reads patch_size / patch_level)
                                        brown_ratio [N] float32, tumour [N] bool
                                        file attrs: slide_id, params_key, summary (JSON), complete

A store is written to a temporary file beside its target and renamed when complete, so a worker killed while
writing leaves no store (only a ``.tmp.h5`` file, removed on the next write) and a store that exists was written to
the end; ``complete`` and ``params_key`` are checked on reading, so a store made with other parameters, or a
file truncated by anything else, is redone, never read.

Precomputed features written by CLAM (``features/h5_files/<slide>.h5``) or TRIDENT
(``features_<encoder>/<slide>.h5``) are read by :func:`read_features`: required datasets ``coords`` [N, 2]
(level-0 px) and ``features`` [N, D]; optional attrs of ``coords``: ``patch_size``, ``patch_level``,
``patch_size_level0``, ``target_magnification`` (TRIDENT). :func:`write_features` writes TRIDENT's layout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
from kedro.io import AbstractDataset

from gb_kedro.datasets.atomic import atomic_path
from gb_kedro.errors import InputDataError

COORD_ATTRS = ("patch_size", "patch_level", "patch_size_level0", "read_size", "mpp", "target_mpp")


def slide_file_key(path: str | Path) -> list:
    """A slide file's identity for store keys: resolved path, size, modification time (a replaced slide is redone)."""
    stat = Path(path).stat()
    return [str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns]


@dataclass(frozen=True)
class PatchStore:
    """The folder of per-slide stores (see the module docstring)."""

    root: Path

    def path(self, slide_id: str, kind: str = "patches") -> Path:
        return self.root / kind / f"{slide_id}.h5"

    def coord_attrs(self, slide_id: str) -> dict:
        """The ``coords`` attributes of a slide's store (``mpp``: level-0 microns per pixel, ``patch_size_level0``,
        ...); empty when there is no store."""
        import h5py

        path = self.path(slide_id)
        if not path.is_file():
            return {}
        try:
            with h5py.File(path, "r") as h5:
                return {k: v.item() if hasattr(v, "item") else v for k, v in h5["coords"].attrs.items()}
        except (OSError, KeyError):
            return {}

    def write_patches(
        self, slide_id: str, patches: pd.DataFrame, coord_attrs: dict, summary: dict, params_key: str
    ) -> Path:
        """Write one slide's scored patches atomically (``x``, ``y``, ``brown_ratio``, ``tumour`` columns)."""
        import h5py

        target = self.path(slide_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        for stale in target.parent.glob(f".{target.name}.*.tmp.h5"):
            stale.unlink(missing_ok=True)  # left by a killed worker
        with atomic_path(target) as tmp, h5py.File(tmp, "w") as h5:
            coords = h5.create_dataset(
                "coords", data=patches[["x", "y"]].to_numpy(np.int64).reshape(-1, 2), dtype=np.int64
            )
            for key in COORD_ATTRS:
                if coord_attrs.get(key) is not None:
                    coords.attrs[key] = coord_attrs[key]
            h5.create_dataset("brown_ratio", data=patches["brown_ratio"].to_numpy(np.float32))
            h5.create_dataset("tumour", data=patches["tumour"].to_numpy(bool))
            h5.attrs.update(slide_id=slide_id, params_key=params_key, summary=json.dumps(summary))
            h5.attrs["complete"] = True
        return target

    def read_patches(self, slide_id: str, params_key: str | None = None) -> tuple[pd.DataFrame, dict] | None:
        """One slide's patches and summary, or None when there is no valid store for ``params_key`` (missing,
        unreadable or truncated, incomplete, or made with other parameters)."""
        import h5py

        path = self.path(slide_id)
        if not path.is_file():
            return None
        try:
            with h5py.File(path, "r") as h5:
                if not h5.attrs.get("complete", False):
                    return None
                if params_key is not None and h5.attrs.get("params_key") != params_key:
                    return None
                coords = h5["coords"][...]
                attrs = {k: h5["coords"].attrs[k].item() for k in COORD_ATTRS if k in h5["coords"].attrs}
                table = pd.DataFrame(
                    {
                        "x": coords[:, 0].astype(np.int64),
                        "y": coords[:, 1].astype(np.int64),
                        "level": int(attrs["patch_level"]),
                        "size": int(attrs["patch_size"]),
                        "brown_ratio": h5["brown_ratio"][...].astype(np.float32),
                        "size_level0": int(attrs["patch_size_level0"]),
                        "read_size": int(attrs["read_size"]),
                        "tumour": h5["tumour"][...].astype(bool),
                    }
                )
                summary = json.loads(h5.attrs["summary"])
        except (OSError, KeyError, ValueError):  # truncated / corrupt / not ours: redo it
            return None
        return table, summary


def write_images(path: Path, images: np.ndarray, coords: np.ndarray, params_key: str) -> None:
    """One slide's decoded patches (``images`` uint8 [N, 3, S, S], ``coords`` [N, 2]) written atomically."""
    import h5py

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        h5.create_dataset("coords", data=np.asarray(coords, np.int64).reshape(-1, 2))
        h5.create_dataset("images", data=images, dtype=np.uint8)
        h5.attrs.update(params_key=params_key, complete=True)


def read_images(path: Path, params_key: str | None = None) -> np.ndarray | None:
    """The decoded patches of a store written by :func:`write_images`, or None when it is missing, truncated,
    incomplete or made with other parameters."""
    import h5py

    if not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as h5:
            if not h5.attrs.get("complete", False) or (
                params_key is not None and h5.attrs.get("params_key") != params_key
            ):
                return None
            return h5["images"][...]
    except (OSError, KeyError, ValueError):
        return None


def read_features(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """A CLAM / TRIDENT feature file: ``(coords [N, 2], features [N, D], coords attrs)``.

    Raises:
        InputDataError: not HDF5, or ``coords`` / ``features`` missing or of different lengths.
    """
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            missing = [k for k in ("coords", "features") if k not in h5]
            if missing:
                raise InputDataError(path, f"not a CLAM/TRIDENT feature file: missing dataset(s) {missing}")
            coords, features = h5["coords"][...], h5["features"][...]
            attrs = {k: v.item() if hasattr(v, "item") else v for k, v in h5["coords"].attrs.items()}
    except OSError as exc:
        raise InputDataError(path, f"not a readable HDF5 file ({exc})") from exc
    if coords.ndim == 3 and coords.shape[0] == 1:  # CLAM writes [1, N, 2] in some versions
        coords = coords[0]
    if features.ndim == 3 and features.shape[0] == 1:
        features = features[0]
    if coords.shape[0] != features.shape[0] or coords.shape[-1] != 2:
        raise InputDataError(path, f"coords {coords.shape} and features {features.shape} do not match")
    return coords.astype(np.int64), features.astype(np.float32), attrs


def write_features(
    path: str | Path, coords: np.ndarray, features: np.ndarray, coord_attrs: dict, file_attrs: dict | None = None
) -> None:
    """One slide's features in TRIDENT's layout, atomically: ``features`` [N, D] float32, ``coords`` [N, 2] int64
    (level-0 px) with ``coord_attrs`` (``patch_size_level0``, ``patch_size``, ``target_magnification``, ...)."""
    import h5py

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        h5.create_dataset("features", data=np.asarray(features, np.float32))
        dataset = h5.create_dataset("coords", data=np.asarray(coords, np.int64).reshape(-1, 2))
        for key, value in coord_attrs.items():
            if value is not None:
                dataset.attrs[key] = value
        h5.attrs.update({k: v for k, v in (file_attrs or {}).items() if v is not None})


class PatchStoreDataset(AbstractDataset[None, PatchStore]):
    """The folder of per-slide patch stores, as a handle (:class:`PatchStore`): the tiling node writes one store
    per slide from its workers and skips the slides whose store is complete for the same parameters.

    Example catalog entry::

        patch_stores:
          type: gb_kedro.datasets.PatchStoreDataset
          path: data/02_intermediate/patch_stores
    """

    def __init__(self, path: str, metadata: dict[str, Any] | None = None):
        self._path = Path(PurePosixPath(path))
        self.metadata = metadata

    def load(self) -> PatchStore:
        return PatchStore(self._path)

    def save(self, data) -> None:
        raise InputDataError(self._path, "patch stores are written by the tiling node's workers, not saved as a whole")

    def _exists(self) -> bool:
        return True  # an empty folder is a valid (empty) store

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}
