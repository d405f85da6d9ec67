"""Lazy patch ``Dataset``: pixels are read from the slides on demand, one OpenSlide handle per worker."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from gb_kedro.datasets.slides import open_slide
from gb_kedro.errors import listed


class PatchDataset(Dataset):
    """Patches of a patch index, read lazily from their slides.

    Args:
        index: rows with ``slide_id``, ``x``, ``y`` (level-0 px), ``level``, ``size`` and optionally
            ``read_size`` (px read at ``level``, resampled to ``size``: slides without a level at the
            target magnification).
        slide_paths: slide ID -> slide file.
        label_column: optional column to return as an integer label (e.g. ``lineage_id``); its classes
            are sorted and exposed as ``classes``.
        output_size: resize patches to this side (e.g. 128 for the CPU demo); None = as read.
        transform: optional callable on the ``[3, H, W]`` float tensor (augmentations).

    Items: ``(image [3, H, W] float32 in [0, 1], label)``; label is -1 without ``label_column``.
    OpenSlide handles are opened on first use in each process and never pickled, so a ``DataLoader``
    with workers gets one handle per slide per worker.
    """

    def __init__(
        self,
        index: pd.DataFrame,
        slide_paths: Mapping[str, str],
        label_column: str | None = None,
        output_size: int | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        self.index = index.reset_index(drop=True)
        missing = sorted(set(self.index["slide_id"]) - set(slide_paths))
        if missing:
            raise KeyError(f"no path for {len(missing)} slide(s): {listed(missing)}")
        self.slide_paths = dict(slide_paths)
        self.label_column = label_column
        self.classes = sorted(self.index[label_column].unique()) if label_column else []
        self._label_of = {c: i for i, c in enumerate(self.classes)}
        self.output_size = output_size
        self.transform = transform
        self._handles: dict = {}

    def __len__(self) -> int:
        return len(self.index)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_handles"] = {}
        return state

    def _slide(self, slide_id: str):
        handle = self._handles.get(slide_id)
        if handle is None:
            handle = self._handles[slide_id] = open_slide(self.slide_paths[slide_id], slide_id)
        return handle

    def read(self, i: int) -> np.ndarray:
        """The RGB uint8 pixels of patch ``i``: ``[size, size, 3]``."""
        from PIL import Image

        row = self.index.iloc[i]
        size = int(row["size"])
        read = int(row["read_size"]) if "read_size" in row.index and pd.notna(row["read_size"]) else size
        region = self._slide(row["slide_id"]).read_region(
            (int(row["x"]), int(row["y"])), int(row["level"]), (read, read)
        )
        region = region.convert("RGB")
        if read != size:  # the same field of view as a patch of a slide scanned at the target magnification
            region = region.resize((size, size), Image.Resampling.BOX)
        return np.array(region)  # a writable copy (torch.from_numpy needs one)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = torch.from_numpy(self.read(i)).permute(2, 0, 1).float().div_(255.0)
        if self.output_size and image.shape[-1] != self.output_size:
            image = torch.nn.functional.interpolate(
                image[None], size=(self.output_size, self.output_size), mode="area"
            )[0]
        if self.transform is not None:
            image = self.transform(image)
        label = self._label_of[self.index.at[i, self.label_column]] if self.label_column else -1
        return image, label

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()
