"""Decoded tumour patches: the pixels every stage that feeds patches to a model reads (catalog entry
``patch_pixels``, made by one node, ``data_engineering.decode_patches``).

On disk: ``<filepath>`` (``.npy``, uint8 ``[N, 3, S, S]``, rows in patch-index order) and ``<filepath>.json``
beside it (provenance: the fingerprint of the patch-index rows decoded, the size, the shape). Loaded as a
read-only memory map, so a stage reads only the rows it uses and worker processes can open the file themselves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gb_kedro.datasets.atomic import LocalFileDataset, atomic_path
from gb_kedro.errors import InputDataError
from gb_kedro.provenance import fingerprint


def pixels_key(index: pd.DataFrame, px: int) -> str:
    """Which patches were decoded, and at what size: slide, position, level and size of every row of ``index``
    (and the read size when patches were resampled to the target field of view)."""
    columns = ["slide_id", "x", "y", "level", "size"]
    if "read_size" in index and (index["read_size"] != index["size"]).any():
        columns.append("read_size")
    return fingerprint(index[columns].to_numpy().astype(str).tolist(), px)


@dataclass(frozen=True)
class PatchPixels:
    """Every patch of a patch index decoded: ``images`` uint8 ``[N, 3, S, S]`` (a read-only memory map once
    saved) in index order, and ``key`` (:func:`pixels_key` of the index rows and the size)."""

    images: np.ndarray
    key: str

    @property
    def px(self) -> int:
        return int(self.images.shape[-1])

    def __len__(self) -> int:
        return len(self.images)

    def rows(self, mask: np.ndarray | None = None) -> np.ndarray:
        """The patches of ``mask`` (boolean or positions over the index; all without) as an in-memory array."""
        return np.asarray(self.images if mask is None else self.images[mask])

    def require(self, patch_index: pd.DataFrame, px: int, stage: str) -> None:
        """Stop with one line when these pixels were decoded for another patch index or at another size."""
        if self.px != px:
            raise InputDataError(
                "patch_pixels",
                f"{stage}: decoded at {self.px} px, this run asks for {px} px (patches.mode / read_px / model_px): "
                "run data_engineering's decode_patches again",
            )
        if len(self) != len(patch_index) or self.key != pixels_key(patch_index.reset_index(drop=True), px):
            raise InputDataError(
                "patch_pixels",
                f"{stage}: decoded for another patch index than the one on disk: run data_engineering's "
                "decode_patches again",
            )


class PatchPixelsDataset(LocalFileDataset):
    """:class:`PatchPixels` as ``<filepath>.npy`` + ``<filepath>.json`` (written atomically, the JSON last: a
    pair on disk is complete); ``load`` memory-maps the array read-only.

    Example catalog entry::

        patch_pixels:
          type: gb_kedro.datasets.PatchPixelsDataset
          filepath: data/04_feature/patch_pixels.npy
    """

    @property
    def _meta_path(self) -> Path:
        return self._filepath.with_suffix(self._filepath.suffix + ".json")

    def load(self) -> PatchPixels:
        path = self._require_file()
        if not self._meta_path.is_file():
            raise InputDataError(self._meta_path, "file not found (written after the pixels): decode the patches again")
        meta = json.loads(self._meta_path.read_text())
        images = np.load(path, mmap_mode="r")
        if list(images.shape) != meta.get("shape"):
            raise InputDataError(
                path, f"shape {images.shape} differs from its record {meta.get('shape')}: decode again"
            )
        return PatchPixels(images, meta["key"])

    def save(self, data: PatchPixels) -> None:
        self._meta_path.unlink(missing_ok=True)  # a pair on disk is complete only once the record is written
        with atomic_path(self._filepath) as tmp:
            np.save(tmp, np.asarray(data.images, np.uint8))
        with atomic_path(self._meta_path) as tmp:
            tmp.write_text(json.dumps({"key": data.key, "shape": list(data.images.shape), "dtype": "uint8"}) + "\n")

    def _exists(self) -> bool:
        return self._filepath.is_file() and self._meta_path.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
